"""What `crewkit schedule list|fires` print: a table on stdout, or JSON."""

from __future__ import annotations

from typing import Any

from crewkit.console import _json_out, _listing, err


def jobs_table(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        _json_out(rows)
        return
    if not rows:
        err.print("no jobs in config/schedules.yaml")
        return
    _listing(
        ("job", "on", "cron", "timezone", "flow", "next fire", "last fire", "running", "misfire"),
        [
            (
                r["job"],
                "yes" if r["enabled"] else "no",
                r["cron"],
                r["timezone"],
                r["flow"],
                ", ".join(r["next_fires"]) or "-",
                _last(r["last_fire"]),
                f"{r['running']}/{r['max_concurrent']}",
                r["misfire"],
            )
            for r in rows
        ],
        free="next fire",
    )


def _last(last: dict[str, Any] | None) -> str:
    if not last:
        return "-"
    run = f" {last['run_id']}" if last.get("run_id") else ""
    return f"{last['fire_time']} {last['status']}{run}"


def fires_table(rows: list[dict[str, Any]], fmt: str) -> None:
    if fmt == "json":
        _json_out(rows)
        return
    if not rows:
        err.print("no fires recorded yet (`crewkit schedule run` records them)")
        return
    _listing(
        ("job", "fire time (UTC)", "status", "run", "detail"),
        [(r["job"], r["fire_time"], r["status"], r["run_id"] or "-", _detail(r["detail"])) for r in rows],
        free="detail",
    )


def _detail(detail: dict[str, Any]) -> str:
    for key in ("reason", "error", "approval_id", "coalesced", "log"):
        if detail.get(key) not in (None, ""):
            return f"{key}: {detail[key]}"
    return ""
