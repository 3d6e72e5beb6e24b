"""The console's memory room: a tenant's memories, a memory's versions (who, when, why), an audited
delete; another tenant's id, an unknown id, a stale form or a locked store change nothing.

The store is the real one: state.db and Qdrant's embedded local store under the test's
CREWKIT_HOME, with the bag-of-words embedder of the memory tests (tests/memory_fakes.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from crewkit.memory import store as store_mod
from crewkit.memory.store import MemoryStore, Scope
from crewkit.settings import load_settings
from tests import web_support
from tests.memory_fakes import WordEmbedder
from tests.web_support import Client, anonymous, make_app

ACME, GLOBEX = Scope("acme"), Scope("globex")


@pytest.fixture
def memory_project(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project on Qdrant's embedded local store; every MemoryStore.open gets the fake embedder."""
    (project / "config" / "memory.yaml").write_text("long_term:\n  engine: local\n")
    real_open = store_mod.MemoryStore.open.__func__  # type: ignore[attr-defined]

    def open_with_words(cls: Any, settings: Any, home: Path | None = None, **kw: Any) -> Any:
        return real_open(
            cls, settings, home, embedder=kw.get("embedder") or WordEmbedder(), index=kw.get("index")
        )

    monkeypatch.setattr(store_mod.MemoryStore, "open", classmethod(open_with_words))
    return project


def signed_in(app: Any, name: str) -> Client:
    return web_support.signed_in(app, name, page="/memory")


def write(project: Path, fn: Any) -> Any:
    """Run `fn(store)` on the project's memory store, then close it (as a CLI command would)."""
    store = MemoryStore.open(load_settings(project))
    try:
        return fn(store)
    finally:
        store.close()


def snapshot(project: Path) -> dict[str, Any]:
    """Everything a memory write changes: the memory tables, the audit log and the vectors."""

    def read(store: MemoryStore) -> dict[str, Any]:
        tables = {
            t: store.state.read(f"SELECT * FROM {t} ORDER BY 1, 2")
            for t in ("memories", "memory_versions", "audit")
        }
        ids = [r[0] for r in tables["memories"]]
        points = (
            sorted((str(p.id), p.payload.get("version")) for p in store.index.retrieve(ids)) if ids else []
        )
        return tables | {"points": points}

    return write(project, read)


@pytest.fixture
def acme(memory_project: Path) -> dict[str, Any]:
    """acme: one memory in three versions (added, updated by ann, rolled back by bob), one of
    user ann; globex: one memory."""

    def fill(store: MemoryStore) -> dict[str, Any]:
        first = store.add("Acme pays invoices in euros", ACME, actor="carol")
        store.update(first.id, "Acme pays invoices in dollars", ACME, actor="ann")
        store.rollback(first.id, 1, ACME, actor="bob")
        ann = store.add("Ann likes short answers", Scope("acme", "ann"), actor="ann")
        other = store.add("Globex pays by credit card", GLOBEX, actor="dave")
        return {"first": first.id, "ann": ann.id, "globex": other.id}

    return write(memory_project, fill)


def test_the_list_shows_the_picked_tenants_memories_only(memory_project: Path, acme: dict[str, Any]) -> None:
    client = anonymous(make_app(memory_project))
    page = client.get("/memory", params={"tenant": "acme"})
    assert page.status_code == 200
    assert f'data-memory-id="{acme["first"]}"' in page.text and f'data-memory-id="{acme["ann"]}"' in page.text
    assert "Acme pays invoices in euros" in page.text and "Globex pays" not in page.text
    assert '<option value="globex"' in page.text and '<option value="acme" selected' in page.text
    assert 'data-action="memory.rollback"' in page.text  # the tenant's recent changes
    only_ann = client.get("/memory", params={"tenant": "acme", "user": "ann", "agent": ""})
    assert f'data-memory-id="{acme["ann"]}"' in only_ann.text
    assert f'data-memory-id="{acme["first"]}"' not in only_ann.text
    globex = client.get("/memory", params={"tenant": "globex"})
    assert "Globex pays by credit card" in globex.text and "Acme pays" not in globex.text


def test_the_default_tenant_and_an_empty_scope(memory_project: Path) -> None:
    page = anonymous(make_app(memory_project)).get("/memory")
    assert (
        page.status_code == 200
        and 'id="no-memories"' in page.text
        and "tenant &#39;default&#39;" in page.text
    )


def test_an_unknown_tenant_or_a_bad_name_is_refused(memory_project: Path, acme: dict[str, Any]) -> None:
    client = anonymous(make_app(memory_project))
    unknown = client.get("/memory", params={"tenant": "acmee"})
    assert unknown.status_code == 422 and "unknown tenant" in unknown.text and "acme" in unknown.text
    assert client.get("/memory", params={"tenant": "x" * 129}).status_code == 422
    assert client.get("/memory", params={"tenant": "acme", "limit": "0"}).status_code == 422


def test_a_memorys_versions_show_text_who_when_and_why(memory_project: Path, acme: dict[str, Any]) -> None:
    page = anonymous(make_app(memory_project)).get(f"/memory/{acme['first']}", params={"tenant": "acme"})
    assert page.status_code == 200
    text = page.text
    rows = [text.index(f'data-version="{v}"') for v in (3, 2, 1)]
    assert rows == sorted(rows)  # newest first
    v3, v2, v1 = (text[start : start + 1500] for start in rows)
    assert "current" in v3 and "bob" in v3 and "rolled back to the text of version 1" in v3
    assert "Acme pays invoices in euros" in v3 and "source rollback" in v3
    assert "ann" in v2 and "updated" in v2 and "Acme pays invoices in dollars" in v2
    assert "carol" in v1 and "added" in v1
    assert 'id="delete-memory"' not in text  # not signed in: no delete button


def test_another_tenants_or_an_unknown_id_is_not_found(memory_project: Path, acme: dict[str, Any]) -> None:
    client = anonymous(make_app(memory_project))
    assert client.get(f"/memory/{acme['globex']}", params={"tenant": "acme"}).status_code == 404
    assert client.get(f"/memory/{acme['first']}", params={"tenant": "acme", "user": "ann"}).status_code == 404
    missing = client.get("/memory/no-such-id", params={"tenant": "acme"})
    assert missing.status_code == 404 and "unknown memory id" in missing.text


def test_delete_removes_every_version_and_is_audited_with_the_signed_in_name(
    memory_project: Path, acme: dict[str, Any]
) -> None:
    client = signed_in(make_app(memory_project), "bob")
    page = client.get(f"/memory/{acme['first']}", params={"tenant": "acme"})
    assert 'id="delete-memory"' in page.text
    answer = client.post(
        f"/memory/{acme['first']}/delete", data=client.form(tenant="acme", user="", agent="")
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/memory?tenant=acme"
    listing = client.get("/memory", params={"tenant": "acme"})
    assert "deleted memory " + acme["first"] in listing.text and "3 version(s)" in listing.text
    assert f'data-memory-id="{acme["first"]}"' not in listing.text
    assert 'data-action="memory.delete"' in listing.text
    assert client.get(f"/memory/{acme['first']}", params={"tenant": "acme"}).status_code == 404

    def check(store: MemoryStore) -> None:
        record = store.changes("acme", acme["first"], limit=1)[0]
        assert (record.action, record.actor, record.detail["versions"]) == ("memory.delete", "bob", 3)
        assert store.state.read(
            "SELECT COUNT(*) FROM memory_versions WHERE memory_id = ?", (acme["first"],)
        ) == [(0,)]
        assert store.index.retrieve([acme["first"]]) == []  # the vector went too
        assert [m.id for m in store.list_memories(GLOBEX)] == [acme["globex"]]

    write(memory_project, check)  # the console closed the embedded store: it opens here


def test_delete_of_another_tenants_or_an_unknown_id_is_404_and_changes_nothing(
    memory_project: Path, acme: dict[str, Any]
) -> None:
    client = signed_in(make_app(memory_project), "bob")
    before = snapshot(memory_project)
    cases = [
        (acme["globex"], {"tenant": "acme"}),
        (acme["first"], {"tenant": "globex"}),
        (acme["first"], {"tenant": "acme", "user": "ann"}),
        ("no-such-id", {"tenant": "acme"}),
        (acme["first"], {"tenant": "nobody-knows"}),
    ]
    for memory_id, scope in cases:
        answer = client.post(f"/memory/{memory_id}/delete", data=client.form(**scope))
        assert answer.status_code == 404, (memory_id, scope, answer.text[-500:])
        assert "unknown memory id" in answer.text
    assert snapshot(memory_project) == before


def test_delete_needs_a_signed_in_person_a_fresh_form_and_a_tenant(
    memory_project: Path, acme: dict[str, Any]
) -> None:
    app = make_app(memory_project)
    before = snapshot(memory_project)
    stranger = anonymous(app)
    assert (
        stranger.post(f"/memory/{acme['first']}/delete", data=stranger.form(tenant="acme")).status_code == 401
    )
    bob = signed_in(app, "bob")
    stale = bob.post(f"/memory/{acme['first']}/delete", data={"csrf_token": "stale", "tenant": "acme"})
    assert stale.status_code == 403
    assert bob.post(f"/memory/{acme['first']}/delete", data=bob.form(tenant=" ")).status_code == 422
    assert bob.post(f"/memory/{acme['first']}/delete", data=bob.form(tenant="a\x01b")).status_code == 422
    assert bob.post(f"/memory/{acme['first']}/delete", data=bob.form(tenant="t" * 129)).status_code == 413
    assert snapshot(memory_project) == before


def test_a_locked_vector_store_is_503_and_changes_nothing(memory_project: Path, acme: dict[str, Any]) -> None:
    from crewkit.memory import vectors

    client = signed_in(make_app(memory_project), "bob")
    before = snapshot(memory_project)
    settings = load_settings(memory_project)
    holder = vectors.open_index(settings.memory.long_term, settings.home, WordEmbedder.dimensions)
    try:  # a run holds the embedded store: reading still works, deleting waits
        assert client.get("/memory", params={"tenant": "acme"}).status_code == 200
        assert client.get(f"/memory/{acme['first']}", params={"tenant": "acme"}).status_code == 200
        answer = client.post(f"/memory/{acme['first']}/delete", data=client.form(tenant="acme"))
        assert (
            answer.status_code == 503
            and "already open" in answer.text
            and "nothing was changed" in answer.text
        )
    finally:
        holder.close()
    assert snapshot(memory_project) == before
    again = client.post(f"/memory/{acme['first']}/delete", data=client.form(tenant="acme"))
    assert again.status_code == 303  # released: the same delete goes through


def test_page_loads_in_a_row_leave_the_store_closed(memory_project: Path, acme: dict[str, Any]) -> None:
    client = signed_in(make_app(memory_project), "bob")
    for _ in range(3):
        assert client.get("/memory", params={"tenant": "acme"}).status_code == 200
        assert client.get(f"/memory/{acme['ann']}", params={"tenant": "acme"}).status_code == 200
    assert (
        client.post(f"/memory/{acme['ann']}/delete", data=client.form(tenant="acme", user="ann")).status_code
        == 303
    )
    home = str(Path(os.environ["CREWKIT_HOME"]).resolve())
    left = [key for key in store_mod._OPEN if key[0] == home]  # noqa: SLF001 - other tests' stores may stay
    assert left == []  # nothing of this home left open in the console's process
    write(memory_project, lambda store: store.index.count())  # another client can take the folder


def test_the_tenant_picker_counts_live_memories(memory_project: Path, acme: dict[str, Any]) -> None:
    client = signed_in(make_app(memory_project), "bob")
    page = client.get("/memory", params={"tenant": "acme"})
    assert "acme (2)" in page.text and "globex (1)" in page.text and "default (0)" in page.text
    client.post(f"/memory/{acme['globex']}/delete", data=client.form(tenant="globex"))
    assert "globex (0)" in client.get("/memory", params={"tenant": "globex"}).text


def test_delete_on_the_shipped_edge_engine(project: Path, memory_project: Path, acme: dict[str, Any]) -> None:
    (project / "config" / "memory.yaml").write_text("long_term:\n  engine: edge\n")

    def fill(store: MemoryStore) -> str:
        return store.add("kept on Qdrant Edge", ACME, actor="ann").id

    edge_id = write(project, fill)
    client = signed_in(make_app(project), "bob")
    answer = client.post(f"/memory/{edge_id}/delete", data=client.form(tenant="acme"))
    assert answer.status_code == 303
    assert write(project, lambda store: (store.index.retrieve([edge_id]), store.count(ACME))) == ([], 2)


def test_a_store_this_process_holds_open_is_shared_and_left_open(
    memory_project: Path, acme: dict[str, Any]
) -> None:
    held = MemoryStore.open(load_settings(memory_project))  # as a run in this process would
    try:
        held.index.count()  # the embedded folder is taken by this client
        client = signed_in(make_app(memory_project), "bob")
        assert client.get(f"/memory/{acme['ann']}", params={"tenant": "acme"}).status_code == 200
        answer = client.post(f"/memory/{acme['ann']}/delete", data=client.form(tenant="acme"))
        assert answer.status_code == 303
        assert (
            held.index.retrieve([acme["ann"]]) == [] and held.index.count() == 2
        )  # still open, still usable
        assert MemoryStore.open(load_settings(memory_project)) is held
    finally:
        held.close()


def test_memory_texts_are_shown_as_text_never_as_markup(memory_project: Path) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    found = write(memory_project, lambda store: store.add(evil, Scope("acme", "<b>ann</b>"), actor="ann"))
    client = anonymous(make_app(memory_project))
    for answer in (
        client.get("/memory", params={"tenant": "acme"}),
        client.get(f"/memory/{found.id}", params={"tenant": "acme", "user": "<b>ann</b>"}),
    ):
        assert answer.status_code == 200
        assert (
            "<script>alert" not in answer.text
            and "<img src=x" not in answer.text
            and "<b>ann" not in answer.text
        )
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in answer.text
