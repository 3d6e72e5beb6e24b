"""The web console (`crewkit serve`): runs, approvals, arena, metrics and memory in a browser.

Server-rendered pages (FastAPI + Jinja2, no JavaScript build, nothing fetched from the internet),
bound to 127.0.0.1 by default. Reading needs no sign-in on a loopback address; every action
that changes state needs a signed-in person (a token) and a CSRF token, and is audited under
that person's name. One module per room:

  app.py      the ASGI app: routers, error pages, body-size limit, security headers
  auth.py     sign-in with a token, the session cookie, CSRF, who is acting
  render.py   the Jinja2 environment, `page()` and the formatting filters
  serve.py    `crewkit serve`: the token, the address, uvicorn
  pages/      one router per room: runs, approvals, arena, metrics, memory
"""
