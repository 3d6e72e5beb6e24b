"""The console's foundation: sign-in, tokens, the session, CSRF, Origin, limits and headers.

Every test drives the real app (`crewkit.web.app.create_app`) through Starlette's TestClient
on a copy of the project; the POST that changes something here is `/signout` (it needs a
signed-in person, a same-origin form and the session's CSRF token like every room's POSTs),
so "nothing changed" means: the person is still signed in afterwards.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from crewkit.errors import UsageError
from crewkit.web import auth
from crewkit.web.app import MAX_BODY_BYTES, SECURITY_HEADERS, create_app, safe_next
from tests.web_support import TOKEN, Client, anonymous, make_app


def signed_in_as(client: Client) -> str | None:
    """The name the console shows as signed in on /signin (None: nobody)."""
    page = client.get("/signin").text
    marker = '<span id="signed-in-as">'
    if marker not in page:
        return None
    return page.split(marker, 1)[1].split("<", 1)[0].strip()


def sign_in(client: Client, token: str, name: str = "bob", next_: str = "/") -> Any:
    return client.post(
        "/signin", data={"csrf_token": client.csrf, "name": name, "token": token, "next": next_}
    )


def signed_in(app: Any, name: str = "bob") -> Client:
    """A client signed in through the form (the CSRF token refreshed from /signin, no room needed)."""
    client = anonymous(app)
    assert sign_in(client, TOKEN, name=name).status_code == 303
    client.refresh_csrf("/signin")
    return client


def routes(app: Any, method: str) -> list[str]:
    """Every path of the app (the rooms' too) answering `method` but sign-in, any {id} filled in."""
    found = app.openapi()["paths"]  # the route table (the console serves no /openapi.json)
    return sorted(
        re.sub(r"\{[^}]+\}", "x-1", path)
        for path, methods in found.items()
        if method in methods and path != "/signin"
    )


def users_app(project: Path, users: str, **kw: Any) -> Any:
    """The console with the tokens of CREWKIT_CONSOLE_USERS=`users` (a resumer that only records)."""
    from crewkit.settings import load_settings

    tokens = auth.Auth.from_env(project / "unused-home", {auth.USERS_ENV: users, **kw})
    return create_app(load_settings(project), tokens, resumer=lambda run_id: None)


# --- sign-in -----------------------------------------------------------------------------------


def test_a_wrong_token_is_401_with_one_line_and_leaves_nobody_signed_in(project):
    client = anonymous(make_app(project))
    answer = sign_in(client, "not-the-token-at-all-0000")
    assert answer.status_code == 401
    assert "wrong token" in answer.text and TOKEN not in answer.text
    assert signed_in_as(client) is None
    # and the refused attempt did not make a later form stale or sign anyone in by accident
    assert client.post("/signout", data=client.form()).status_code == 401


def test_the_right_token_signs_in_under_the_typed_name_and_goes_to_next(project):
    client = anonymous(make_app(project))
    answer = sign_in(client, TOKEN, name="carol.d@example", next_="/approvals?status=all")
    assert answer.status_code == 303 and answer.headers["location"] == "/approvals?status=all"
    assert signed_in_as(client) == "carol.d@example"


@pytest.mark.parametrize("name", ["", "   ", "bob smith", "-bob", "<script>", "x" * 65, "bob\nadmin"])
def test_a_name_outside_the_rules_is_422_and_nobody_is_signed_in(project, name):
    client = anonymous(make_app(project))
    answer = sign_in(client, TOKEN, name=name)
    assert answer.status_code == 422, answer.text[-500:]
    assert "give your name" in answer.text and "<script>" not in answer.text
    assert signed_in_as(client) is None


def test_sign_in_with_a_missing_or_stale_form_token_is_403(project):
    app = make_app(project)
    client = anonymous(app)
    missing = client.post("/signin", data={"name": "bob", "token": TOKEN})
    other = anonymous(app)  # another browser's form token does not fit this session
    stale = client.post("/signin", data={"csrf_token": other.csrf, "name": "bob", "token": TOKEN})
    assert missing.status_code == stale.status_code == 403
    assert signed_in_as(client) is None


def test_signing_in_gives_a_new_csrf_token_so_one_from_before_no_longer_acts(project):
    client = anonymous(make_app(project))
    before = client.csrf
    assert sign_in(client, TOKEN).status_code == 303
    assert client.post("/signout", data={"csrf_token": before}).status_code == 403
    assert signed_in_as(client) == "bob"
    assert client.refresh_csrf() != before


def test_eleven_failed_sign_ins_pause_sign_in_with_429_even_for_the_right_token(project):
    client = anonymous(make_app(project))
    for _ in range(auth.MAX_FAILURES):
        assert sign_in(client, "wrong-token-wrong-token-0").status_code == 401
    answer = sign_in(client, TOKEN)
    assert answer.status_code == 429 and "too many failed sign-ins" in answer.text
    assert signed_in_as(client) is None


def test_failed_sign_ins_pause_only_the_client_that_made_them():
    tokens = auth.Auth(shared=TOKEN, source="test")
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(auth.WebError):
            tokens.sign_in("eve", "nope", client="10.0.0.66")
    with pytest.raises(auth.WebError) as paused:
        tokens.sign_in("eve", TOKEN, client="10.0.0.66")
    assert paused.value.status == 429
    assert tokens.sign_in("bob", TOKEN, client="10.0.0.7") == "bob"  # another address signs in


def test_the_failure_window_forgets_old_failures(project, monkeypatch):
    tokens = auth.Auth(shared=TOKEN, source="test")
    clock = [1000.0]
    monkeypatch.setattr(auth.time, "monotonic", lambda: clock[0])
    for _ in range(auth.MAX_FAILURES):
        with pytest.raises(auth.WebError):
            tokens.sign_in("bob", "nope")
    with pytest.raises(auth.WebError) as paused:
        tokens.sign_in("bob", TOKEN)
    assert paused.value.status == 429
    clock[0] += auth.FAILURE_WINDOW_S + 1
    assert tokens.sign_in("bob", TOKEN) == "bob"


def test_signing_out_ends_the_session(project):
    client = signed_in(make_app(project), "bob")
    assert client.post("/signout", data=client.form()).status_code == 303
    assert signed_in_as(client) is None


# --- tokens from the environment ----------------------------------------------------------------


def test_per_person_tokens_name_the_actor_whatever_name_is_typed(project):
    alice_t, bob_t = "a" * 20, "b-token-0123456789"
    client = anonymous(users_app(project, f"alice:{alice_t}, bob:{bob_t}"))
    form = client.get("/signin").text
    assert 'name="name"' not in form  # the token says who you are: no name to type
    assert sign_in(client, bob_t, name="alice").status_code == 303
    assert signed_in_as(client) == "bob"


def test_with_per_person_tokens_the_audit_names_the_tokens_owner_as_actor(project):
    bob_t = "b-token-0123456789"
    app = users_app(project, f"alice:{'a' * 20} bob:{bob_t}")
    store = app.state.store
    store.create_run("r-failed", "default", {"task": "t"}, "fp", "carol")
    store.set_status("r-failed", "failed", error="the model went away")
    client = anonymous(app)
    assert sign_in(client, bob_t, name="alice").status_code == 303  # the typed name is ignored
    client.refresh_csrf("/signin")
    assert client.post("/runs/r-failed/resume", data=client.form()).status_code == 303
    rows = store.read("SELECT actor FROM audit WHERE action = 'run.resume_requested'")
    assert [tuple(r) for r in rows] == [("bob",)]


def test_per_person_tokens_refuse_the_other_tokens(project):
    client = anonymous(users_app(project, "alice:" + "a" * 20))
    assert sign_in(client, "b" * 20, name="alice").status_code == 401
    assert signed_in_as(client) is None


def test_users_and_a_shared_token_both_work_and_the_shared_one_asks_a_name(project):
    shared = "shared-token-0123456789"
    client = anonymous(users_app(project, "alice:" + "a" * 20, **{auth.TOKEN_ENV: shared}))
    assert 'name="name"' in client.get("/signin").text
    assert sign_in(client, shared, name="dave").status_code == 303
    assert signed_in_as(client) == "dave"


def test_parse_users_accepts_spaces_commas_and_newlines():
    parsed = auth.parse_users(" alice:" + "a" * 16 + ",bob:" + "b" * 16 + "\ncarol:" + "c" * 16 + " ")
    assert parsed == {"a" * 16: "alice", "b" * 16: "bob", "c" * 16: "carol"}
    assert auth.parse_users("") == {}


@pytest.mark.parametrize(
    "text, said",
    [
        ("alice", "alice:..."),
        ("alice:short", "at least 16"),
        ("bad name:" + "a" * 20, "NAME:TOKEN"),
        (":" + "a" * 20, "NAME:TOKEN"),
        ("alice:" + "a" * 20 + " bob:" + "a" * 20, "alice and bob have the same token"),
    ],
)
def test_parse_users_refuses_malformed_pairs_with_one_line(text, said):
    with pytest.raises(UsageError) as refused:
        auth.parse_users(text)
    message = str(refused.value)
    assert said in message and "\n" not in message
    assert "a" * 20 not in message  # a token never appears in the message


def test_a_short_shared_token_is_refused(tmp_path):
    with pytest.raises(UsageError, match="at least 16"):
        auth.Auth.from_env(tmp_path, {auth.TOKEN_ENV: "short-token"})
    assert not (tmp_path / auth.TOKEN_FILE).exists()


def test_without_env_tokens_a_fresh_token_is_written_0600_each_start(tmp_path):
    home = tmp_path / "home"
    first = auth.Auth.from_env(home, {})
    path = home / auth.TOKEN_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == first.shared and len(first.shared or "") >= 16
    assert first.source == str(path) and first.users == {}
    second = auth.Auth.from_env(home, {})
    assert second.shared != first.shared and path.read_text().strip() == second.shared
    with pytest.raises(auth.WebError):
        second.sign_in("bob", first.shared or "")


def test_env_tokens_write_no_token_file(tmp_path):
    auth.Auth.from_env(tmp_path, {auth.TOKEN_ENV: "x" * 24})
    auth.Auth.from_env(tmp_path, {auth.USERS_ENV: "bob:" + "y" * 24})
    assert not (tmp_path / auth.TOKEN_FILE).exists()


# --- acting: sign-in, CSRF, Origin ------------------------------------------------------------


def test_a_post_without_sign_in_is_401_even_with_a_valid_form_token(project):
    client = anonymous(make_app(project))
    answer = client.post("/signout", data=client.form())
    assert answer.status_code == 401 and "sign in first" in answer.text


def test_a_post_with_a_missing_or_wrong_csrf_token_is_403_and_changes_nothing(project):
    client = signed_in(make_app(project), "bob")
    assert client.post("/signout", data={}).status_code == 403
    assert client.post("/signout", data={"csrf_token": "x" + client.csrf}).status_code == 403
    assert client.post("/signout", data={"csrf_token": ""}).status_code == 403
    assert signed_in_as(client) == "bob"


def test_a_post_from_a_foreign_origin_or_referer_is_403_and_changes_nothing(project):
    client = signed_in(make_app(project), "bob")
    for header in (
        {"origin": "http://evil.example"},
        {"origin": "http://127.0.0.1:9999"},  # same host, another port: another origin
        {"referer": "https://evil.example/page"},
    ):
        answer = client.post("/signout", data=client.form(), headers=header)
        assert answer.status_code == 403, header
        assert "may not act on this console" in answer.text
    assert signed_in_as(client) == "bob"
    same = client.post("/signout", data=client.form(), headers={"origin": "http://127.0.0.1"})
    assert same.status_code == 303


def test_sign_in_from_a_foreign_origin_is_403(project):
    client = anonymous(make_app(project))
    answer = client.post(
        "/signin",
        data={"csrf_token": client.csrf, "name": "bob", "token": TOKEN},
        headers={"origin": "http://evil.example"},
    )
    assert answer.status_code == 403 and signed_in_as(client) is None


def test_acting_form_fields_422_when_empty_and_413_when_too_long():
    from starlette.datastructures import FormData

    acting = auth.Acting(name="bob", form=FormData([("note", "  "), ("long", "x" * 11)]))
    with pytest.raises(auth.WebError) as empty:
        acting.text("note", "the note", 10)
    assert empty.value.status == 422
    assert acting.text("note", "the note", 10, required=False) == ""
    with pytest.raises(auth.WebError) as long:
        acting.text("long", "the note", 10)
    assert long.value.status == 413 and "11 characters" in long.value.message


# --- the body limit -----------------------------------------------------------------------------


def test_a_body_over_64_kib_by_content_length_is_413_and_changes_nothing(project):
    client = signed_in(make_app(project), "bob")
    body = {"csrf_token": client.csrf, "note": "x" * (MAX_BODY_BYTES + 10)}
    answer = client.post("/signout", data=body)
    assert answer.status_code == 413 and "larger than 64 KiB" in answer.text
    for key in SECURITY_HEADERS:
        assert key in answer.headers
    assert signed_in_as(client) == "bob"


def test_a_chunked_body_over_64_kib_is_413_while_it_streams(project):
    client = signed_in(make_app(project), "bob")
    head = f"csrf_token={client.csrf}&note=".encode()

    def chunks():
        yield head
        for _ in range(20):
            yield b"x" * 8192

    answer = client.post(
        "/signout", content=chunks(), headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert answer.status_code == 413 and "larger than 64 KiB" in answer.text
    assert signed_in_as(client) == "bob"


def test_a_body_just_under_the_limit_is_accepted(project):
    client = signed_in(make_app(project), "bob")
    answer = client.post("/signout", data={"csrf_token": client.csrf, "note": "x" * (MAX_BODY_BYTES - 200)})
    assert answer.status_code == 303


# --- headers, reads, redirects ------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/signin", "/", "/no-such-page", "/static/console.css"])
def test_security_headers_on_every_answer(project, path):
    answer = anonymous(make_app(project)).get(path)
    for key, value in SECURITY_HEADERS.items():
        assert answer.headers.get(key) == value, (path, key)
    assert "script-src 'self'" in answer.headers["content-security-policy"]
    assert "server" not in answer.headers or "uvicorn" not in answer.headers["server"]


def test_error_pages_carry_the_headers_and_a_json_client_gets_json(project):
    client = anonymous(make_app(project))
    answer = client.post("/signout", data=client.form())
    assert answer.headers["x-frame-options"] == "DENY"
    as_json = client.post("/signout", data=client.form(), headers={"accept": "application/json"})
    assert as_json.status_code == 401 and as_json.json()["status"] == 401


def test_the_session_cookie_is_httponly_and_samesite_strict(project):
    client = anonymous(make_app(project))
    answer = sign_in(client, TOKEN)
    cookie = answer.headers["set-cookie"].lower()
    assert "crewkit_console=" in cookie and "httponly" in cookie and "samesite=strict" in cookie


def test_reads_are_open_on_loopback(project):
    client = anonymous(make_app(project))
    assert client.get("/").status_code == 303


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_reads_need_a_sign_in_on_a_non_loopback_host(project, host):
    app = make_app(project, host=host)
    client = anonymous(app)
    # every page the app has (the rooms' too), with any {id} filled in: nothing readable
    paths = routes(app, "get")
    assert {"/", "/runs", "/approvals", "/leaderboard"} <= set(paths), paths
    for path in paths:
        answer = client.get(path)
        assert answer.status_code == 401, path
        assert "sign in to read this console" in answer.text
    assert client.get("/signin").status_code == 200
    assert client.get("/static/console.css").status_code == 200
    reader = signed_in(app, "bob")
    assert reader.get("/").status_code == 303


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.1.2.3", True), ("localhost", True),
                                            ("::1", True), ("[::1]", True), ("0.0.0.0", False),
                                            ("10.0.0.1", False), ("127.example.com", False)])  # fmt: skip
def test_is_loopback(host, loopback):
    assert auth.is_loopback(host) is loopback


@pytest.mark.parametrize(
    "target, kept",
    [
        ("/runs", True),
        ("/approvals?status=all", True),
        ("/", True),
        ("//evil.example", False),
        ("///evil.example", False),
        ("http://evil.example/runs", False),
        ("https:evil.example", False),
        ("javascript:alert(1)", False),
        ("/\\evil.example", False),
        ("\\\\evil.example", False),
        ("/\t/evil.example", False),
        ("/\n/evil.example", False),
        ("runs", False),
        ("/signin", False),  # signing in again from the sign-in page lands on the console, not on it
        ("/signin?next=/runs", False),
        ("", False),
    ],
)
def test_safe_next_keeps_only_paths_on_this_console(target, kept):
    assert safe_next(target) == (target if kept else "/")


def test_sign_in_never_redirects_off_the_console(project):
    for target in ("//evil.example/x", "http://evil.example", "/\t/evil.example"):
        client = anonymous(make_app(project))
        answer = sign_in(client, TOKEN, next_=target)
        assert answer.status_code == 303 and answer.headers["location"] == "/", target


def test_the_sign_in_form_escapes_next(project):
    page = anonymous(make_app(project)).get('/signin?next=/runs"><script>x</script>').text
    assert "<script>x</script>" not in page


def test_token_file_is_not_readable_by_others_even_with_a_loose_umask(tmp_path):
    old = os.umask(0)
    try:
        auth.new_token_file(tmp_path)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / auth.TOKEN_FILE).stat().st_mode) == 0o600


def pending_approval(app: Any) -> str:
    """A pending approval made through the store's own API (what a paused run leaves)."""
    import time

    store = app.state.store
    store.create_run("r-pending", "default", {"task": "pay the invoice"}, "fp", "carol")
    made = store.request_approval(
        "r-pending", "k1", "release", "sensitive", {"what": "a payment"}, "payment", ["*"],
        time.time() + 3600, "reject",
    )  # fmt: skip
    return made.id


def test_the_pending_count_shows_on_loopback_but_not_to_the_anonymous_elsewhere(project):
    loopback = make_app(project)
    pending_approval(loopback)
    assert 'id="pending-count">1<' in anonymous(loopback).get("/signin").text
    private = make_app(project, host="0.0.0.0")
    for path in ("/signin", "/runs", "/no-such-page"):
        assert 'id="pending-count"' not in anonymous(private).get(path).text, path
    assert 'id="pending-count">1<' in signed_in(private).get("/signin").text


def test_a_form_with_a_file_or_too_many_fields_is_422_and_changes_nothing(project):
    client = signed_in(make_app(project), "bob")
    with_file = client.post("/signout", data=client.form(), files={"f": ("a.txt", b"hello")})
    assert with_file.status_code == 422 and "the form cannot be used" in with_file.text
    many = client.post(
        "/signout", data=client.form(), files={f"x{i}": (None, "1") for i in range(60)}
    )  # multipart: Starlette counts the fields
    assert many.status_code == 422
    assert signed_in_as(client) == "bob"


def test_sign_in_with_a_file_is_422(project):
    client = anonymous(make_app(project))
    answer = client.post(
        "/signin",
        data={"csrf_token": client.csrf, "name": "bob", "token": TOKEN},
        files={"f": ("a.txt", b"x")},
    )
    assert answer.status_code == 422 and signed_in_as(client) is None


def test_every_post_of_every_room_needs_a_sign_in_a_csrf_token_and_the_same_origin(project):
    app = make_app(project)
    anon, bob = anonymous(app), signed_in(app, "bob")
    before = app.state.store.read("SELECT COUNT(*) FROM audit")
    paths = routes(app, "post")
    assert {"/signout", "/runs/x-1/resume", "/approvals/x-1/approve"} <= set(paths), paths
    for path in paths:
        assert anon.post(path, data=anon.form(note="x")).status_code == 401, path
        assert bob.post(path, data={"note": "x"}).status_code == 403, path
        foreign = bob.post(path, data=bob.form(note="x"), headers={"origin": "https://evil.example"})
        assert foreign.status_code == 403, path
    assert app.state.store.read("SELECT COUNT(*) FROM audit") == before
    assert signed_in_as(bob) == "bob"


@pytest.mark.parametrize("path", ["/openapi.json", "/docs", "/redoc"])
def test_no_api_schema_or_docs_pages_are_served(project, path):
    assert anonymous(make_app(project)).get(path).status_code == 404


@pytest.mark.parametrize("host", ["localhost:8787", "127.0.0.1:8787", "[::1]:8787", "127.0.0.1"])
def test_a_loopback_console_reached_by_a_loopback_name_is_open_to_read(project, host):
    client = anonymous(make_app(project))
    assert client.get("/runs", headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example:8787", "console.example.com", "127.0.0.1.nip.io:8787", ""])
def test_a_loopback_console_reached_by_another_name_needs_a_sign_in_to_read(project, host):
    """A DNS name rebound to 127.0.0.1 (a web page reading the console) or a reverse proxy
    passing its Host on: reads need a sign-in, as on a non-loopback address."""
    app = make_app(project)
    pending_approval(app)
    client = anonymous(app)
    for path in ("/", "/runs", "/approvals", "/signin"):
        answer = client.get(path, headers={"host": host})
        assert answer.status_code == (200 if path == "/signin" else 401), (host, path)
        assert 'id="pending-count"' not in answer.text
    bob = signed_in(app, "bob")
    assert bob.get("/runs", headers={"host": host}).status_code == 200


def test_the_sign_in_link_of_a_refused_form_leads_back_to_the_forms_page_not_the_post(project):
    client = anonymous(make_app(project))
    refused = client.post("/signout", data=client.form(), headers={"referer": "http://127.0.0.1/runs/r-7"})
    assert refused.status_code == 401
    assert 'id="error-signin">' in refused.text and 'href="/signin?next=/runs/r-7"' in refused.text
    bare = client.post("/signout", data=client.form())
    assert 'href="/signin?next=/"' in bare.text


def test_the_sign_in_link_of_a_refused_page_keeps_its_query(project):
    client = anonymous(make_app(project, host="0.0.0.0"))
    answer = client.get("/approvals?status=all")
    assert answer.status_code == 401
    assert 'href="/signin?next=/approvals%3Fstatus%3Dall"' in answer.text
    follow = client.get("/signin?next=/approvals%3Fstatus%3Dall")
    assert 'name="next" value="/approvals?status=all"' in follow.text


def test_security_headers_on_every_page_of_every_room(project):
    app = make_app(project)
    for client in (anonymous(app), signed_in(app, "bob")):
        for path in routes(app, "get"):
            answer = client.get(path)
            assert answer.status_code < 500, (path, answer.status_code)
            for key, value in SECURITY_HEADERS.items():
                assert answer.headers.get(key) == value, (path, key)


def test_a_bug_gets_the_console_error_page_with_the_headers_and_no_traceback(project):
    from fastapi.testclient import TestClient

    app = make_app(project)

    def boom() -> None:
        raise RuntimeError("secret detail sk-abc123 in a traceback")

    app.add_api_route("/boom", boom)
    answer = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False).get("/boom")
    assert answer.status_code == 500
    assert "something broke in the console" in answer.text and 'id="error-message"' in answer.text
    assert "sk-abc123" not in answer.text and "Traceback" not in answer.text
    for key, value in SECURITY_HEADERS.items():
        assert answer.headers.get(key) == value, key
