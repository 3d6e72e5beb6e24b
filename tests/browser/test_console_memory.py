"""The memory room in a browser: pick a tenant, open a memory, read its versions, delete it, and see
it gone from the list and the deletion in the audit trail with the signed-in name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crewkit.memory import store as store_mod
from crewkit.memory.store import MemoryStore, Scope
from crewkit.settings import load_settings
from tests.browser.conftest import shot, sign_in
from tests.memory_fakes import WordEmbedder

pytestmark = pytest.mark.browser


@pytest.fixture
def memories(project: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """acme: a memory in three versions and a second one; globex: one. The embedded local Qdrant
    store under CREWKIT_HOME, the bag-of-words embedder for every store opened."""
    (project / "config" / "memory.yaml").write_text("long_term:\n  engine: local\n")
    real_open = store_mod.MemoryStore.open.__func__  # type: ignore[attr-defined]

    def open_with_words(cls: Any, settings: Any, home: Path | None = None, **kw: Any) -> Any:
        return real_open(cls, settings, home, embedder=WordEmbedder(), index=kw.get("index"))

    monkeypatch.setattr(store_mod.MemoryStore, "open", classmethod(open_with_words))
    store = MemoryStore.open(load_settings(project))
    try:
        acme = Scope("acme")
        first = store.add("Acme pays invoices in euros", acme, actor="carol")
        store.update(first.id, "Acme pays invoices in dollars by card", acme, actor="ann")
        store.rollback(first.id, 1, acme, actor="carol")
        second = store.add("Acme's buyer answers on Tuesdays", acme, actor="ann")
        other = store.add("Globex pays by credit card", Scope("globex"), actor="dave")
    finally:
        store.close()
    return {"first": first.id, "second": second.id, "globex": other.id}


def test_read_the_versions_delete_one_and_see_it_gone_and_audited(memories, console, page) -> None:
    sign_in(page, console.url, "bob")
    page.click("nav >> text=Memory")
    page.select_option("#tenant-select", "acme")
    page.click("#show-scope")
    rows = page.locator("#memories tbody tr")
    assert rows.count() == 2
    assert "Globex" not in page.inner_text("#memories")

    page.click(f'tr[data-memory-id="{memories["first"]}"] a.memory-link')
    page.wait_for_selector("#versions")
    assert page.inner_text("#memory-id") == memories["first"]
    versions = page.locator("#versions tbody tr")
    assert [versions.nth(i).get_attribute("data-version") for i in range(versions.count())] == ["3", "2", "1"]
    newest, middle = page.inner_text('tr[data-version="3"]'), page.inner_text('tr[data-version="2"]')
    assert "current" in newest and "carol" in newest and "rolled back to the text of version 1" in newest
    assert "ann" in middle and "Acme pays invoices in dollars by card" in middle
    shot(page, "memory-versions")

    page.click("#delete-memory")
    page.wait_for_selector(".flash")
    assert "deleted memory " + memories["first"] in page.inner_text(".flash")
    assert page.url.endswith("/memory?tenant=acme")
    assert page.locator(f'tr[data-memory-id="{memories["first"]}"]').count() == 0
    assert page.locator(f'tr[data-memory-id="{memories["second"]}"]').count() == 1
    deletion = page.locator('#memory-changes tr[data-action="memory.delete"]')
    assert deletion.count() == 1
    assert (
        deletion.locator(".actor").inner_text() == "bob" and "3 version(s) removed" in deletion.inner_text()
    )
    shot(page, "memory-deleted")

    page.goto(f"{console.url}/memory/{memories['first']}?tenant=acme")
    assert "was deleted" in page.inner_text("main")


def test_another_tenants_memory_is_not_found(memories, console, page) -> None:
    sign_in(page, console.url, "bob")
    answer = page.goto(f"{console.url}/memory/{memories['globex']}?tenant=acme")
    assert answer is not None and answer.status == 404
    assert "unknown memory id" in page.inner_text("main")
