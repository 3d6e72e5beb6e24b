"""Grounded verification: claims of a result checked against the run's sources (EN and ZH)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crewkit.errors import ConfigError
from crewkit.governance import grounding
from crewkit.governance.acceptance import Check
from crewkit.governance.verification import Verification
from crewkit.runtime.store import StateStore
from crewkit.settings import load_settings

TOWER = (
    "The Eiffel Tower is a wrought-iron lattice tower in Paris. It was completed in 1889 as the "
    "entrance arch to the 1889 World's Fair. The tower is 330 metres tall and was designed by the "
    "engineering company of Gustave Eiffel."
)
ORDER = '{"order_id": 48213, "status": "shipped", "carrier": "DHL", "items": 3, "total_eur": 1290.5}'
GREAT_WALL = (
    "根据2012年国家文物局公布的测量结果，明长城总长度为8851.8千米。长城始建于春秋战国时期，主要用于军事防御。"
)


def verdicts(result: str, sources: list[str], task: str = "") -> dict[str, bool]:
    return {c.claim: c.supported for c in grounding.check(result, sources, task=task).checks}


# ---------------------------------------------------------------- claims


def test_claims_are_sentences_and_list_items_of_the_prose_without_code_or_markup():
    text = (
        "## Summary\n"
        "Dr. Smith measured 3.5 kg. The box is blue!\n"
        "- **First** item is here\n"
        "2. Second item\n"
        "```python\nx = 1. \nprint(x)\n```\n"
        "长城很长。它始建于春秋战国时期！"
    )
    claims = [c.text for c in grounding.split_claims(text, "s1")]
    assert claims == [
        "Summary",
        "Dr. Smith measured 3.5 kg.",
        "The box is blue!",
        "First item is here",
        "Second item",
        "长城很长。",
        "它始建于春秋战国时期！",
    ]
    assert {c.subtask for c in grounding.split_claims(text, "s1")} == {"s1"}


def test_generic_lines_and_restatements_of_the_task_are_not_counted():
    result = (
        "Here is what I found:\nThe Eiffel Tower is in Paris.\nI hope this helps!\n希望对你有帮助。\n"
        "The tower is 330 metres tall."
    )
    g = grounding.check(result, [TOWER], task="Tell me about the Eiffel Tower in Paris")
    assert [c.claim for c in g.checks] == ["The tower is 330 metres tall."]
    assert g.skipped == 4 and g.checks[0].supported


# ---------------------------------------------------------------- English


def test_english_paraphrase_is_supported_and_an_invented_fact_is_not():
    result = (
        "The Eiffel Tower was finished in 1889 for the World's Fair. It stands 330 metres tall. "
        "It was repainted for the 50th time in 2019. Its elevators were installed by Otis Brothers."
    )
    got = verdicts(result, [TOWER], task="When was the Eiffel Tower built?")
    assert got == {
        "The Eiffel Tower was finished in 1889 for the World's Fair.": True,
        "It stands 330 metres tall.": True,
        "It was repainted for the 50th time in 2019.": False,
        "Its elevators were installed by Otis Brothers.": False,
    }


def test_a_number_the_sources_do_not_give_makes_a_claim_unsupported():
    g = grounding.check("The tower is 324 metres tall.", [TOWER])
    (claim,) = g.checks
    assert not claim.supported and "324" in claim.reason
    # the same number written differently is the same number
    assert verdicts("The order total is 1,290.50 EUR.", [ORDER]) == {"The order total is 1,290.50 EUR.": True}
    assert verdicts("The order total is 1,290.70 EUR.", [ORDER]) == {
        "The order total is 1,290.70 EUR.": False
    }


def test_a_name_the_sources_do_not_give_makes_a_claim_unsupported_even_with_every_other_word_there():
    got = verdicts("The Eiffel Tower in Paris was designed by Thomas Edison's company.", [TOWER])
    assert list(got.values()) == [False]
    g = grounding.check("Order 48213 travels with UPS.", [ORDER])
    assert not g.checks[0].supported and "ups" in g.checks[0].reason


def test_a_negated_claim_is_not_supported_by_the_positive_statement():
    g = grounding.check("The tower was not completed in 1889.", [TOWER])
    assert not g.checks[0].supported and "opposite" in g.checks[0].reason


def test_tool_output_json_supports_claims_about_its_fields():
    g = grounding.check(
        "- Order 48213 has been shipped.\n- The carrier is DHL.\n- It has 3 items.",
        [grounding.Source("tool:1", "tool", ORDER, "order_status")],
        task="What is the status of order 48213?",
    )
    assert [c.supported for c in g.checks] == [True, True, True]
    assert {c.source for c in g.checks} == {"tool:1"} and g.checks[0].source_label == "order_status"


# ---------------------------------------------------------------- Chinese


def test_chinese_claims_are_matched_on_character_ngrams():
    got = verdicts(
        "明长城的总长度为8851.8千米。长城是唯一能从月球上用肉眼看到的建筑。长城主要用于军事防御。",
        [GREAT_WALL],
        task="长城有多长？",
    )
    assert got == {
        "明长城的总长度为8851.8千米。": True,
        "长城是唯一能从月球上用肉眼看到的建筑。": False,
        "长城主要用于军事防御。": True,
    }


def test_a_chinese_claim_with_a_wrong_number_is_unsupported():
    g = grounding.check("明长城总长度为6700千米。", [GREAT_WALL], task="长城有多长？")
    assert not g.checks[0].supported and "6700" in g.checks[0].reason


# ---------------------------------------------------------------- verdict, policy, stripping


def test_without_sources_nothing_is_checked_and_nothing_fails():
    g = grounding.check("The tower is 330 metres tall.", [])
    assert not g.checked and g.unsupported == [] and not g.fails(require=True, max_unsupported=0)
    assert "no sources" in g.summary


def test_the_profile_decides_whether_unsupported_claims_fail_the_verification():
    g = grounding.check([("s1", "The tower is 330 metres tall. It was built in 1925.")], [TOWER])
    assert [c.claim for c in g.unsupported] == ["It was built in 1925."]
    checks = [Check("not_empty", "s1", True)]

    listed = Verification(checks, grounding=g, require_grounding=False)
    assert listed.passed and listed.feedback() == []
    record = listed.as_record()
    assert record["verdict"] == "passed" and not record["grounding"]["failed"]
    assert [c["claim"] for c in record["grounding"]["unsupported"]] == ["It was built in 1925."]
    assert "not failing" in record["summary"]

    required = Verification(checks, grounding=g, require_grounding=True, max_unsupported=0)
    assert not required.passed
    (fix,) = required.feedback()
    assert fix.startswith("s1: ") and "It was built in 1925." in fix and "1925" in fix
    assert required.as_record()["grounding"]["failed"]

    tolerant = Verification(checks, grounding=g, require_grounding=True, max_unsupported=1)
    assert tolerant.passed


def test_strip_unsupported_removes_the_claims_where_they_stand():
    result = "Intro line.\n- The tower is 330 metres tall.\n- It was built in 1925.\nIt is in Paris. It has 9 lifts."
    g = grounding.check(result, [TOWER], task="Intro line")
    assert [c.claim for c in g.unsupported] == ["It was built in 1925.", "It has 9 lifts."]
    assert (
        grounding.strip_unsupported(result, g)
        == "Intro line.\n- The tower is 330 metres tall.\nIt is in Paris."
    )


def test_citation_markers_are_not_claims_and_go_with_a_stripped_claim():
    result = "Facts:\n[2] The tower is 330 metres tall [1]. It was built in 1925 [1, 3]. It is in Paris [1]."
    g = grounding.check(result, [TOWER])
    assert [c.claim for c in g.checks] == [
        "The tower is 330 metres tall.",
        "It was built in 1925.",
        "It is in Paris.",
    ]
    assert g.skipped == 1  # "Facts:" stays a line of its own: a heading, not part of the next claim
    stripped = grounding.strip_unsupported(result, g)
    assert stripped == "Facts:\n[2] The tower is 330 metres tall [1]. It is in Paris [1]."


def test_the_embedder_supports_a_paraphrase_but_never_overrides_a_wrong_number():
    class Same:
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [[1.0, 0.0] for _ in texts]  # everything is "the same meaning"

    sources = ["The company employs about 420 people in Rotterdam."]
    lexical = grounding.check("Its staff numbers roughly 420 workers.", sources)
    assert not lexical.checks[0].supported
    semantic = grounding.check("Its staff numbers roughly 420 workers.", sources, embedder=Same())
    assert semantic.checks[0].supported and semantic.checks[0].semantic == 1.0
    wrong = grounding.check("Its staff numbers roughly 520 workers.", sources, embedder=Same())
    assert not wrong.checks[0].supported


# ---------------------------------------------------------------- sources of a run


def test_sources_for_run_are_the_journalled_tool_outputs_without_delegations_plus_extra(tmp_path: Path):
    store = StateStore.open(tmp_path / "home")
    store.create_run("r1", "default", {}, "fp", None)
    store.create_run("r2", "default", {}, "fp", None)
    store.journal_put("r1", "tool:1:order_status:abc:0", "tool", 1, {"type": "str", "value": ORDER})
    store.journal_put(
        "r1",
        "tool:1:Delegate work to coworker:def:0",
        "tool",
        1,
        {"type": "str", "value": "The carrier is UPS."},
    )
    store.journal_put("r1", "tool:1:lookup:ghi:0", "tool", 1, {"type": "json", "value": {"city": "Paris"}})
    store.journal_put("r1", "model:1:xyz:0", "model", 1, {"type": "str", "value": "a model answer"})
    store.journal_put("r2", "tool:1:other:jkl:0", "tool", 1, {"type": "str", "value": "another run"})

    sources = grounding.sources_for_run(
        store, "r1", extra=[{"id": "memory:m1", "kind": "memory", "text": "Bob likes tea."}]
    )
    assert [(s.kind, s.label, s.text) for s in sources] == [
        ("tool", "order_status", ORDER),
        ("tool", "lookup", json.dumps({"city": "Paris"})),
        ("memory", "", "Bob likes tea."),
    ]
    g = grounding.check("The carrier is UPS. Bob likes tea.", sources)
    assert [c.supported for c in g.checks] == [False, True]  # a coworker's answer is no evidence


# ---------------------------------------------------------------- the profile field


def test_profiles_yaml_sets_grounding_and_a_bad_value_is_a_one_line_error(project: Path):
    settings = load_settings(project)
    assert settings.profile.grounding.require is False
    assert settings.with_profile("enterprise").profile.grounding.require is True
    profiles = project / "config" / "profiles.yaml"
    profiles.write_text(
        profiles.read_text().replace(
            "    budgets: {per_run: 2.0, total: 200.0, per_tenant: 50.0}\n",
            "    budgets: {per_run: 2.0, total: 200.0, per_tenant: 50.0}\n    grounding: {max_unsupported: -1}\n",
        )
    )
    with pytest.raises(ConfigError, match=r"profiles\.yaml:\d+: .*max_unsupported"):
        load_settings(project)
