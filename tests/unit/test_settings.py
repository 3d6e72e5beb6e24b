"""Config is validated once, with FILE:LINE errors and close-match suggestions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from crewkit.errors import ConfigError
from crewkit.runtime.startup import load_checked as load_settings
from crewkit.settings import json_schemas


def _edit(project: Path, name: str, old: str, new: str) -> Path:
    path = project / "config" / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))
    return path


def _line_of(path: Path, needle: str) -> int:
    for i, line in enumerate(path.read_text().splitlines(), start=1):
        if needle in line:
            return i
    raise AssertionError(needle)


def test_shipped_config_loads(settings):
    assert settings.models.roles["reasoning"].model == "local-small"
    assert settings.models.models["local-small"].provider == "llamacpp"
    assert settings.governance.verifier.max_rounds >= 1


def test_role_naming_unknown_model_points_at_line_and_suggests(project):
    path = _edit(project, "models.yaml", "reasoning: {model: local-small", "reasoning: {model: local-smal")
    with pytest.raises(ConfigError) as err:
        load_settings(project)
    line = _line_of(path, "reasoning: {model: local-smal")
    assert str(err.value).startswith(f"config/models.yaml:{line}: ")
    assert "'local-smal'" in str(err.value) and "did you mean 'local-small'" in str(err.value)


def test_malformed_yaml_names_file_and_line(project):
    path = project / "config" / "models.yaml"
    lines = path.read_text().splitlines()
    lines.insert(5, "  broken: [unclosed")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as err:
        load_settings(project)
    message = str(err.value)
    assert message.startswith("config/models.yaml:")
    assert "invalid YAML" in message
    assert int(message.split(":")[1]) >= 6


def test_unknown_field_is_rejected_with_suggestion(project):
    path = _edit(project, "models.yaml", "    context: 8192\n", "    contex: 8192\n")
    with pytest.raises(ConfigError) as err:
        load_settings(project)
    assert str(err.value).startswith(f"config/models.yaml:{_line_of(path, 'contex: 8192')}: ")
    assert "unknown field 'contex'" in str(err.value)
    assert "did you mean 'context'" in str(err.value)


def test_unknown_provider_is_rejected(project):
    _edit(project, "models.yaml", "provider: openai\n", "provider: opneai\n")
    with pytest.raises(ConfigError, match=r"unknown provider 'opneai' \(did you mean 'openai'\?\)"):
        load_settings(project)


def test_missing_required_role_is_rejected(project):
    _edit(project, "models.yaml", "  manager:   {model: local-small}\n", "")
    with pytest.raises(ConfigError, match="role 'manager' is missing"):
        load_settings(project)


def test_embedding_role_must_use_an_embedding_model(project):
    _edit(
        project,
        "models.yaml",
        "embedding: {model: local-use-multilingual}",
        "embedding: {model: local-small}",
    )
    with pytest.raises(ConfigError, match="role 'embedding' needs an embedding model"):
        load_settings(project)


def test_wrong_type_names_the_field(project):
    path = _edit(project, "governance.yaml", "max_retries: 2", "max_retries: lots")
    with pytest.raises(ConfigError) as err:
        load_settings(project)
    line = _line_of(path, "max_retries: lots")
    assert str(err.value).startswith(f"config/governance.yaml:{line}: field 'guardrails.max_retries'")
    assert "(got 'lots')" in str(err.value)


def test_duplicate_key_is_an_error(project):
    path = project / "config" / "governance.yaml"
    path.write_text(path.read_text() + "verifier:\n  max_rounds: 3\n")
    with pytest.raises(ConfigError, match="duplicate key 'verifier'"):
        load_settings(project)


def test_unknown_output_guardrail_is_rejected(project):
    _edit(project, "governance.yaml", "[not_empty,", "[not_empy,")
    with pytest.raises(ConfigError, match=r"unknown guardrail 'not_empy' \(did you mean 'not_empty'\?\)"):
        load_settings(project)


def test_missing_models_file_is_a_clear_error(project):
    (project / "config" / "models.yaml").unlink()
    with pytest.raises(ConfigError, match=r"config/models.yaml:1: file not found"):
        load_settings(project)


def test_telemetry_is_off_and_storage_is_in_the_project(project, monkeypatch):
    for key in ("CREWAI_DISABLE_TELEMETRY", "OTEL_SDK_DISABLED", "CREWAI_TRACING_ENABLED", "CREWKIT_HOME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.delenv("CREWAI_STORAGE_DIR", raising=False)
    import os

    settings = load_settings(project)
    assert os.environ["CREWAI_DISABLE_TELEMETRY"] == "true"
    assert os.environ["OTEL_SDK_DISABLED"] == "true"
    assert os.environ["CREWAI_TRACING_ENABLED"] == "false"
    assert settings.home == project / ".crewkit"
    assert os.environ["CREWAI_STORAGE_DIR"] == str(project / ".crewkit" / "crewai")


def test_shipped_json_schemas_match_the_models():
    root = Path(__file__).resolve().parents[2]
    for filename, schema in json_schemas().items():
        shipped = json.loads((root / "config" / "schema" / filename).read_text())
        assert shipped == schema, f"config/schema/{filename} is stale: run 'crewkit config schema'"


def test_api_key_in_params_is_refused(project):
    _edit(
        project,
        "models.yaml",
        "    model: gpt-4o\n",
        "    model: gpt-4o\n    params: {api_key: sk-live-123}\n",
    )
    with pytest.raises(ConfigError, match=r"would put a secret in the config; set 'api_key_env: VAR'"):
        load_settings(project)


def test_unknown_llamacpp_param_is_refused(project):
    _edit(project, "models.yaml", "params: {temperature: 0.2, max_tokens: 256}", "params: {temprature: 0.2}")
    with pytest.raises(ConfigError, match=r"model 'local-small': unknown param 'temprature'"):
        load_settings(project)


def _readme_governance_defaults() -> dict[str, str]:
    """`| key | default | meaning |` rows of the README's config/governance.yaml table."""
    text = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    table = text.split("`config/governance.yaml`", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 2 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[1].strip("`")
    return rows


def test_defaults_without_governance_yaml_are_what_the_readme_says(project):
    (project / "config" / "governance.yaml").unlink()
    governance = load_settings(project).governance
    rows = _readme_governance_defaults()
    assert set(rows) >= {"guardrails.max_retries", "verifier.max_rounds", "output_guardrails"}
    for key, written in rows.items():
        value = governance
        for part in key.split("."):
            value = getattr(value, part)
        if isinstance(value, list):
            assert value == [v.strip() for v in written.strip("[]").split(",")], key
        else:
            assert str(value) == written, key
    assert "no_prompt_injection" in governance.output_guardrails


def test_settings_import_nothing_of_the_engine(project):
    """settings.py depends on nothing: loading config imports no provider, guardrail or CrewAI module."""
    import subprocess
    import sys

    code = (
        "import sys; from crewkit.settings import load_settings; load_settings(__import__('pathlib').Path(sys.argv[1]));"
        "engine = sorted(m for m in sys.modules if m.startswith(('crewkit.models', 'crewkit.governance', 'crewai')));"
        "print(engine); sys.exit(1 if engine else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(project)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_shipped_profiles_yaml_equals_the_built_in_profiles(project):
    """config/profiles.yaml ships the brief's figures; without the file the same profiles apply."""
    from crewkit.settings import BUILTIN_PROFILES, ProfilesConfig

    shipped = load_settings(project)
    assert shipped.profiles == ProfilesConfig.model_validate(BUILTIN_PROFILES)
    (project / "config" / "profiles.yaml").unlink()
    built_in = load_settings(project)
    assert built_in.profiles == shipped.profiles and built_in.profile_name == "startup"
    assert (
        built_in.profile.slo.p99_ms == 500
        and built_in.with_profile("enterprise").profile.slo.availability == 0.9999
    )


def test_a_profiles_risk_and_approvals_replace_governance_yaml_under_that_profile(project):
    profiles = project / "config" / "profiles.yaml"
    profiles.write_text(
        profiles.read_text().replace(
            "    budgets: {per_run: 2.0, total: 200.0, per_tenant: 50.0}\n",
            "    budgets: {per_run: 2.0, total: 200.0, per_tenant: 50.0}\n    approvals: {sample_rate: 1.0}\n"
            "    risk: {default_tier: medium}\n",
        )
    )
    base = load_settings(project)
    mid = base.with_profile("mid-size")
    assert base.governance.approvals.sample_rate == 0.5 and mid.governance.approvals.sample_rate == 1.0
    assert mid.governance.risk.default_tier == "medium" and base.governance.risk.default_tier == "low"
    assert (
        mid.with_profile("startup").governance == base.governance
    )  # switching back restores governance.yaml
