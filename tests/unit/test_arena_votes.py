"""Votes JSONL (FastChat's battle dumps): read with line-numbered errors, skip and report, write back."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from crewkit.errors import UsageError
from crewkit.evaluation.votes import Battle, read_jsonl, write_jsonl

FASTCHAT = [
    {"model_a": "gpt-4", "model_b": "claude-v1", "winner": "model_a", "tstamp": 1682351591.1,
     "anony": True, "language": "English", "turn": 1, "judge": "arena_user_973"},
    {"model_a": "vicuna-13b", "model_b": "gpt-4", "winner": "model_b", "tstamp": 1682351600},
    {"model_a": "claude-v1", "model_b": "vicuna-13b", "winner": "tie", "tstamp": 1682351700.5},
    {"model_a": "gpt-4", "model_b": "vicuna-13b", "winner": "tie (bothbad)", "tstamp": 1682351800.0},
]  # fmt: skip


def _file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "votes.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_reads_fastchat_lines_and_keeps_unknown_keys(tmp_path):
    path = _file(tmp_path, [json.dumps(d) for d in FASTCHAT])
    read = read_jsonl(path)
    assert [b.winner for b in read.battles] == ["model_a", "model_b", "tie", "tie (bothbad)"]
    first = read.battles[0]
    assert (first.model_a, first.model_b, first.tstamp) == ("gpt-4", "claude-v1", 1682351591.1)
    assert first.extra == {"anony": True, "language": "English", "turn": 1, "judge": "arena_user_973"}
    assert first.where == f"{path}:1" and read.skipped == []


def test_written_lines_read_back_the_same(tmp_path):
    battles = read_jsonl(_file(tmp_path, [json.dumps(d) for d in FASTCHAT])).battles
    out = io.StringIO()
    assert write_jsonl(battles, out) == 4
    assert [json.loads(line) for line in out.getvalue().splitlines()] == [
        {**d, "tstamp": float(d["tstamp"])} for d in FASTCHAT
    ]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("{not json", "invalid JSON at column 2"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"model_a": "x", "winner": "tie", "tstamp": 1}', "missing 'model_b'"),
        ('{"model_a": "", "model_b": "y", "winner": "tie"}', "'model_a' must be a non-empty string"),
        ('{"model_a": 3, "model_b": "y", "winner": "tie"}', "'model_a' must be a non-empty string, got 3"),
        ('{"model_a": "x", "model_b": "x", "winner": "tie"}', "model_a and model_b are the same model 'x'"),
        ('{"model_a": "x", "model_b": "y"}', "missing 'winner'"),
        ('{"model_a": "x", "model_b": "y", "winner": "a"}', "'winner' is \"a\"; expected one of"),
        ('{"model_a": "x", "model_b": "y", "winner": "tie", "tstamp": "noon"}', "'tstamp' must be a number"),
        ('{"model_a": "x", "model_b": "y", "winner": "tie", "tstamp": true}', "'tstamp' must be a number"),
    ],
)
def test_a_malformed_line_fails_with_its_file_and_line(tmp_path, line, expected):
    good = json.dumps(FASTCHAT[0])
    path = _file(tmp_path, [good, "", good, line, good])
    with pytest.raises(UsageError) as caught:
        read_jsonl(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:4: ") and expected in message
    assert "--on-bad-line skip" in message and "\n" not in message


def test_skip_leaves_bad_lines_out_and_lists_them(tmp_path):
    good = json.dumps(FASTCHAT[1])
    path = _file(tmp_path, ["{oops", good, '{"model_a": "a", "model_b": "a", "winner": "tie"}', good])
    read = read_jsonl(path, on_bad="skip")
    assert len(read.battles) == 2 and [b.line for b in read.battles] == [2, 4]
    assert [n for n, _ in read.skipped] == [1, 3]
    summary = read.skipped_summary()
    assert f"{path}: skipped 2 malformed line(s): 1, 3" in summary and "invalid JSON" in summary


def test_missing_file_is_one_line(tmp_path):
    with pytest.raises(UsageError, match="nope.jsonl: cannot read"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_a_missing_tstamp_reads_as_zero():
    from crewkit.evaluation.votes import parse_line

    assert parse_line('{"model_a": "x", "model_b": "y", "winner": "model_b"}') == Battle(
        "x", "y", "model_b", 0.0
    )


def test_a_byte_order_mark_is_not_part_of_line_one(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes("\ufeff".encode() + json.dumps(FASTCHAT[0]).encode() + b"\n")
    assert read_jsonl(path).battles[0].model_a == "gpt-4"
