"""One router per room of the console; `crewkit.web.app` mounts every one in `ROUTERS`."""
