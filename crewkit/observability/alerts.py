"""Alert sinks: where budget alerts and SLO breaches go besides the log and the audit log.

A deployment profile names them once (`budgets.sinks` in config/profiles.yaml: a JSONL `file`
relative to the project, a `webhook` URL that gets each alert as a JSON POST); budget alerts
(`crewkit.governance.budget`) and SLO breaches (`crewkit.observability.slo`) both go through
`send`. Callers send after their transaction commits (`StateStore.after_commit`), so a sink
never sees an alert that was rolled back and never runs while the write lock is held. A sink
that fails is logged and never raises: an alert must not fail the run that raised it.
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 2.0


def send(
    event: dict[str, Any],
    line: str,
    sinks: Any,
    project_dir: Path,
    *,
    what: str = "alert",
    logger: logging.Logger | None = None,
) -> None:
    """Log `line` (WARNING, on `logger`: the caller's) and hand `event` to the profile's `sinks`
    (`crewkit.settings.AlertSinks`: file, webhook)."""
    logger = logger or log
    logger.warning("%s", line)
    if sinks is None:
        return
    if sinks.file:
        path = Path(sinks.file)
        if not path.is_absolute():
            path = project_dir / path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(event, ensure_ascii=False, sort_keys=True) + "\n")
        except OSError as exc:
            logger.warning("%s sink %s failed: %s", what, sinks.file, exc.strerror or exc)
    if sinks.webhook:
        post_json(sinks.webhook, event, what=what, logger=logger)


def safe_url(url: str) -> str:
    """scheme://host of a URL: a webhook's path and query often carry its secret."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}{f':{parts.port}' if parts.port else ''}/…"


def post_json(
    url: str,
    payload: dict[str, Any],
    timeout: float = WEBHOOK_TIMEOUT_S,
    *,
    what: str = "alert",
    logger: logging.Logger | None = None,
) -> bool:
    """POST `payload` as JSON; False (logged, with the URL's path hidden) when it fails."""
    data = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode("utf-8")
    request = urllib.request.Request(
        url, data=data, method="POST", headers={"Content-Type": "application/json", "User-Agent": "crewkit"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - http(s) checked in settings
            response.read(1024)
        return True
    except Exception as exc:  # noqa: BLE001 - a sink never fails the run
        reason = getattr(exc, "reason", None) or getattr(exc, "code", None) or type(exc).__name__
        (logger or log).warning("%s webhook %s failed: %s", what, safe_url(url), reason)
        return False
