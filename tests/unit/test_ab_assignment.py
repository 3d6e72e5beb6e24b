"""Sticky, weighted assignment of keys to arms, and an arm applied to the settings."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import pytest
from scipy import stats

from crewkit.evaluation import experiments as ab
from crewkit.evaluation.experiments import Arm, Experiment, RolePatch

KEYS = [f"tenant-{i}" for i in range(20_000)]


def arms_of(name: str, weights: dict[str, float]) -> dict[str, str]:
    return {k: ab.pick_arm(ab.key_hash(name, k), weights) for k in KEYS}


def test_the_key_hash_is_sha256_of_name_and_key_and_never_the_key():
    expected = "sha256:" + hashlib.sha256(b"routing-v2:acme").hexdigest()
    assert ab.key_hash("routing-v2", "acme") == expected
    assert "acme" not in ab.key_hash("routing-v2", "acme")
    assert ab.key_hash("other", "acme") != expected  # salted by the experiment


def test_the_same_key_gets_the_same_arm_in_another_process_with_another_hash_seed():
    weights = {"control": 50, "treatment": 50}
    here = [ab.pick_arm(ab.key_hash("exp", k), weights) for k in KEYS[:200]]
    code = (
        "from crewkit.evaluation import experiments as ab\n"
        f"print(','.join(ab.pick_arm(ab.key_hash('exp', k), {weights!r}) for k in {KEYS[:200]!r}))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().split(",") == here
    assert here == [ab.pick_arm(ab.key_hash("exp", k), weights) for k in KEYS[:200]]  # and again here


def test_pinned_assignments_do_not_change_between_versions():
    # If this fails, every running experiment would reshuffle its keys: change it deliberately only.
    tenants = ("acme", "globex", "initech", "default", "hooli", "umbrella")
    halves = [ab.pick_arm(ab.key_hash("routing-v2", t), {"control": 50, "treatment": 50}) for t in tenants]
    assert halves == ["treatment", "control", "treatment", "treatment", "treatment", "control"]
    three = [ab.pick_arm(ab.key_hash("routing-v2", t), {"a": 5, "b": 3, "c": 2}) for t in tenants]
    assert three == ["a", "b", "b", "c", "a", "c"]


@pytest.mark.parametrize(
    "weights", [{"control": 50, "treatment": 50}, {"control": 70, "treatment": 30}, {"a": 5, "b": 3, "c": 2}]
)
def test_keys_are_spread_by_the_weights(weights):
    assigned = arms_of("exp", weights)
    observed = [sum(1 for a in assigned.values() if a == arm) for arm in weights]
    total = sum(weights.values())
    expected = [len(KEYS) * w / total for w in weights.values()]
    assert stats.chisquare(observed, expected).pvalue > 0.001, (observed, expected)
    for o, e in zip(observed, expected, strict=True):
        assert abs(o - e) / len(KEYS) < 0.015


def test_an_arm_with_weight_zero_gets_no_key():
    assigned = arms_of("exp", {"control": 1, "paused": 0, "treatment": 1})
    assert "paused" not in set(assigned.values())


def test_raising_a_weight_moves_keys_only_into_that_arm_and_no_more_than_needed():
    before = arms_of("exp", {"control": 50, "treatment": 50})
    after = arms_of("exp", {"control": 50, "treatment": 60})
    moved = [k for k in KEYS if before[k] != after[k]]
    assert all(before[k] == "control" and after[k] == "treatment" for k in moved)
    # the treatment's share goes from 50% to 60/110 = 54.5%: about 4.5% of the keys must move
    assert abs(len(moved) / len(KEYS) - (60 / 110 - 0.5)) < 0.01


def test_adding_an_arm_only_takes_keys_into_it_and_reordering_moves_nothing():
    before = arms_of("exp", {"control": 50, "treatment": 50})
    after = arms_of("exp", {"control": 50, "treatment": 50, "treatment-b": 50})
    assert all(after[k] in (before[k], "treatment-b") for k in KEYS)
    assert arms_of("exp", {"treatment": 50, "control": 50}) == before


def test_three_arms_keep_keys_between_arms_whose_weight_stayed():
    before = arms_of("exp", {"a": 40, "b": 30, "c": 30})
    after = arms_of("exp", {"a": 20, "b": 30, "c": 30})
    # lowering a's weight hands some of a's keys to b and c; none moves between b and c
    assert all(before[k] == after[k] or before[k] == "a" for k in KEYS)


def test_the_unit_decides_the_key():
    assert ab.key_of("tenant", {"tenant": " acme "}, "run-1") == "acme"
    assert ab.key_of("tenant", {}, "run-1") == ab.DEFAULT_KEY == "default"
    assert ab.key_of("tenant", {"tenant": ""}, "run-1") == "default"
    assert ab.key_of("user", {"user": "bob"}, "run-1") == "bob"
    assert ab.key_of("run", {"tenant": "acme"}, "run-1") == "run-1"


def test_user_unit_falls_back_to_crewkit_user_then_default(monkeypatch):
    monkeypatch.setenv("CREWKIT_USER", "carol")
    assert ab.key_of("user", {}, "run-1") == "carol"
    monkeypatch.delenv("CREWKIT_USER")
    assert ab.key_of("user", {}, "run-1") == "default"


def _experiment(**arms: Arm) -> Experiment:
    return Experiment(enabled=True, arms=arms)


def test_assign_gives_one_arm_per_enabled_experiment(settings):
    from dataclasses import replace

    from crewkit.evaluation.experiments import ExperimentsConfig

    cfg = ExperimentsConfig(
        experiments={
            "on": _experiment(control=Arm(weight=1), treatment=Arm(weight=1)),
            "off": Experiment(enabled=False, arms={"control": Arm(weight=1), "treatment": Arm(weight=1)}),
        }
    )
    got = ab.assign(replace(settings, experiments=cfg), {"task": "x", "tenant": "acme"}, "run-1")
    assert [(a.experiment, a.unit, a.key_hash) for a in got] == [("on", "tenant", ab.key_hash("on", "acme"))]
    assert got[0].arm == ab.pick_arm(ab.key_hash("on", "acme"), {"control": 1, "treatment": 1})


def test_an_arm_patches_a_copy_of_the_settings(settings):
    from dataclasses import replace

    from crewkit.evaluation.experiments import Assignment, ExperimentsConfig

    arm = Arm(
        weight=1, roles={"reasoning": RolePatch(model="gpt-4o-mini"), "code": RolePatch(fallbacks=["gpt-4o"])}
    )
    cfg = ExperimentsConfig(experiments={"x": _experiment(control=Arm(weight=1), treatment=arm)})
    base = replace(settings, experiments=cfg)
    patched = ab.apply(base, [Assignment("x", "treatment", "tenant", "sha256:0")])
    assert patched.models.roles["reasoning"].model == "gpt-4o-mini"
    assert patched.models.roles["reasoning"].fallbacks == base.models.roles["reasoning"].fallbacks  # kept
    assert patched.models.roles["code"].model == base.models.roles["code"].model
    assert patched.models.roles["code"].fallbacks == ["gpt-4o"]
    assert base.models.roles["reasoning"].model == "local-small"  # the original is untouched
    assert ab.apply(base, [Assignment("x", "control", "tenant", "sha256:0")]) is base  # nothing to change
    # an arm no longer in the config runs the settings as configured
    assert ab.apply(base, [Assignment("x", "gone", "tenant", "sha256:0")]) is base


def test_an_arm_sets_the_routing_policy(settings):
    from dataclasses import replace

    from crewkit.evaluation.experiments import Assignment, ExperimentsConfig

    policies = list(settings.models.routing.policies)
    other = next(p for p in policies if p != settings.models.routing.policy)
    cfg = ExperimentsConfig(
        experiments={"x": _experiment(control=Arm(weight=1), treatment=Arm(weight=1, routing=other))}
    )
    base = replace(settings, experiments=cfg)
    patched = ab.apply(base, [Assignment("x", "treatment", "tenant", "sha256:0")])
    assert patched.models.routing.policy == other and base.models.routing.policy != other


def test_a_derived_role_map_keeps_overrides_and_shares_built_models(settings):
    from dataclasses import replace

    from crewkit.evaluation.experiments import Assignment, ExperimentsConfig
    from crewkit.models.registry import RoleMap

    arm = Arm(weight=1, roles={"reasoning": RolePatch(model="gpt-4o-mini")})  # scripted: no key needed
    cfg = ExperimentsConfig(experiments={"x": _experiment(control=Arm(weight=1), treatment=arm)})
    base = replace(settings, experiments=cfg)
    fake = object()
    role_map = RoleMap(base, overrides={"reasoning": fake})
    arm_settings, arm_map = ab.under_arms(
        base, role_map, [Assignment("x", "treatment", "tenant", "sha256:0")]
    )
    assert arm_map is not role_map and arm_map.settings is arm_settings
    assert arm_map.overrides == {"reasoning": fake} and arm_map._models is role_map._models
    assert ab.under_arms(base, role_map, []) == (base, role_map)
