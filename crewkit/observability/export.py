"""Run metrics out of state.db: JSON, Prometheus text, a Prometheus endpoint, OpenTelemetry.

- `to_json(summary, slo_report)`: what `crewkit metrics --format json` prints.
- `prometheus_text(summary, slo_report)`: the Prometheus exposition format, rendered by
  prometheus_client (`CollectorRegistry` + `generate_latest`) from a collector that reads the
  figures of the window: counters `crewkit_model_calls_total` and friends are the window's
  counts; latency quantiles, error ratio, availability and throughput are gauges; the profile's
  SLO targets and values are gauges too.
- `serve(settings, store, host, port)`: an HTTP `/metrics` endpoint (prometheus_client's
  server) computing the figures at each scrape: counters over every row kept
  (`metrics.retention_days`), gauges over `metrics.slo_window`. `crewkit metrics --serve` runs it
  in the foreground; with `metrics.prometheus.enabled` a run or a worker starts it in the
  background (127.0.0.1:9464 by default; a port already taken is a warning, not a failure).
- `start_otel(settings, store)`: with `metrics.otel.enabled` AND the endpoint variable set
  (`OTEL_EXPORTER_OTLP_ENDPOINT` by default), the same figures go to an OTLP/HTTP collector
  every `interval_seconds`. Nothing leaves the machine otherwise.

crewkit sets OTEL_SDK_DISABLED=true so that CrewAI's own telemetry stays off; the SDK's
`MeterProvider` reads that variable and would hand out no-op meters, so the provider built here
(never the global one) is switched back on explicitly: the user enabled this export.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from crewkit.observability import metrics
from crewkit.observability.metrics import Stats, Summary

log = logging.getLogger(__name__)

_COUNTERS: tuple[tuple[str, str, str], ...] = (
    ("model_calls", "calls", "Model calls a model answered or failed"),
    ("model_call_errors", "errors", "Model calls that failed"),
    ("model_cache_hits", "cache_hits", "Model calls answered by the response cache"),
    ("model_replays", "replayed", "Model calls answered from the run's journal on resume"),
    ("model_refusals", "refused", "Model calls refused before they were sent (budget, allowlist)"),
    ("model_retries", "retries", "Retries: fallback attempts and task guardrail retries"),
    ("model_input_tokens", "input_tokens", "Input tokens of model calls"),
    ("model_output_tokens", "output_tokens", "Output tokens of model calls"),
    ("model_cost_usd", "cost_usd", "Cost of model calls in USD"),
    ("tasks_completed", "tasks_completed", "CrewAI tasks completed"),
    ("tasks_failed", "tasks_failed", "CrewAI tasks failed"),
    ("guardrails_passed", "guardrails_passed", "Task guardrail checks passed"),
    ("guardrails_failed", "guardrails_failed", "Task guardrail checks failed"),
    ("tool_errors", "tool_errors", "Tool calls that failed"),
    ("agent_errors", "agent_errors", "Agent executions that failed"),
)
_GAUGES: tuple[tuple[str, str, str], ...] = (
    ("model_error_ratio", "error_rate", "Failed model calls / model calls"),
    ("model_availability_ratio", "availability", "Logical model calls answered (any attempt or the cache)"),
    ("model_throughput_per_minute", "throughput_per_min", "Answered model calls per minute"),
)


def to_json(summary: Summary, slo_report: Any = None) -> dict[str, Any]:
    out = summary.as_dict()
    if slo_report is not None:
        out["slo"] = slo_report.as_dict()
    return out


def _labels(s: Stats, by: tuple[str, ...]) -> list[str]:
    return ["" if s.group.get(k) is None else str(s.group[k]) for k in by]


class _Collector:
    """A prometheus_client collector over `figures()` -> (summary for counters, summary for
    gauges, SLO report or None), called at each collection."""

    def __init__(self, figures: Any) -> None:
        self.figures = figures

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        counted, windowed, report = self.figures()
        by = counted.by
        for name, attr, doc in _COUNTERS:
            fam = CounterMetricFamily(f"crewkit_{name}", doc, labels=list(by))
            for s in counted.rows:
                fam.add_metric(_labels(s, by), float(getattr(s, attr) or 0))
            yield fam
        wby = windowed.by
        lat = GaugeMetricFamily(
            "crewkit_model_call_latency_seconds",
            "Model call latency quantiles over the window (nearest rank)",
            labels=[*wby, "quantile"],
        )
        for s in windowed.rows:
            for q, attr in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
                value = getattr(s, attr)
                if value is not None:
                    lat.add_metric([*_labels(s, wby), q], value / 1000.0)
        yield lat
        for name, attr, doc in _GAUGES:
            fam = GaugeMetricFamily(f"crewkit_{name}", f"{doc}, over the window", labels=list(wby))
            for s in windowed.rows:
                value = getattr(s, attr)
                if value is not None:
                    fam.add_metric(_labels(s, wby), float(value))
            yield fam
        window = GaugeMetricFamily("crewkit_metrics_window_seconds", "Length of the window of the gauges")
        window.add_metric([], windowed.until - windowed.since)
        yield window
        if report is not None:
            target = GaugeMetricFamily(
                "crewkit_slo_target", "SLO target of the profile", labels=["profile", "slo"]
            )
            value = GaugeMetricFamily(
                "crewkit_slo_value", "Measured value of the SLO", labels=["profile", "slo"]
            )
            ok = GaugeMetricFamily(
                "crewkit_slo_ok",
                "1 within the SLO, 0 breached (absent: too few calls)",
                labels=["profile", "slo"],
            )
            for r in report.results:
                target.add_metric([report.profile, r.slo], r.target)
                if r.value is not None:
                    value.add_metric([report.profile, r.slo], r.value)
                if r.ok is not None:
                    ok.add_metric([report.profile, r.slo], 1.0 if r.ok else 0.0)
            yield target
            yield value
            yield ok


def _registry(figures: Any) -> Any:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(figures))  # type: ignore[arg-type]
    return registry


def prometheus_text(summary: Summary, slo_report: Any = None) -> str:
    """The Prometheus exposition text of one window (counters are the window's counts)."""
    from prometheus_client import generate_latest

    return generate_latest(_registry(lambda: (summary, summary, slo_report))).decode("utf-8")


def live_figures(settings: Any, store: Any, by: tuple[str, ...] = ("role", "model")) -> Any:
    """A function giving (everything kept, the SLO window, the SLO report) now: for scrapes."""
    from crewkit.observability import slo

    window = metrics.parse_duration(settings.operations.metrics.slo_window)

    def figures() -> tuple[Summary, Summary, Any]:
        now = time.time()
        counted = metrics.counts(store, 0.0, now + 1e-6, by)  # every row kept, aggregated in SQL
        windowed = metrics.summarize(store, now - window, now + 1e-6, by)
        return counted, windowed, slo.evaluate(settings, store, now)

    return figures


# -- HTTP endpoint -------------------------------------------------------------------------------

_servers: dict[tuple[str, int], Any] = {}
_servers_lock = threading.Lock()


def serve(settings: Any, store: Any, host: str, port: int) -> Any:
    """Start the `/metrics` endpoint on host:port in a daemon thread; returns the server.
    Raises OSError when the port cannot be bound."""
    from prometheus_client import start_http_server

    with _servers_lock:
        server = _servers.get((host, port))
        if server is None:
            server, _thread = start_http_server(
                port, addr=host, registry=_registry(live_figures(settings, store))
            )
            _servers[(host, port)] = server
        return server


def start_endpoint(settings: Any, store: Any) -> Any:
    """The endpoint of `metrics.prometheus` when enabled (once per process); None otherwise."""
    cfg = settings.operations.metrics.prometheus
    if not cfg.enabled:
        return None
    try:
        return serve(settings, store, cfg.host, cfg.port)
    except OSError as exc:
        log.warning(
            "metrics endpoint not started on %s:%s (%s); set metrics.prometheus.port in "
            "config/operations.yaml to a free port",
            cfg.host,
            cfg.port,
            exc.strerror or exc,
        )
        return None


def stop_servers() -> None:
    """Shut the endpoints this process started (tests)."""
    with _servers_lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.shutdown()
        server.server_close()


# -- OpenTelemetry -------------------------------------------------------------------------------

_otel: dict[str, Any] = {}
_otel_lock = threading.Lock()


def otel_endpoint(settings: Any) -> str | None:
    """The collector URL for metrics, or None when export is off or its variable is unset."""
    from crewkit.settings import env

    cfg = settings.operations.metrics.otel
    if not cfg.enabled:
        return None
    base = env(cfg.endpoint_env)
    if base is None:
        return None
    base = base.rstrip("/")
    return base if base.endswith("/v1/metrics") else f"{base}/v1/metrics"


def start_otel(settings: Any, store: Any) -> Any:
    """A MeterProvider exporting the run metrics over OTLP/HTTP, once per process and endpoint;
    None when `metrics.otel` is off or its endpoint variable is unset (no network then)."""
    url = otel_endpoint(settings)
    if url is None:
        if settings.operations.metrics.otel.enabled:
            log.info(
                "OpenTelemetry export is enabled but %s is not set: nothing exported",
                settings.operations.metrics.otel.endpoint_env,
            )
        return None
    with _otel_lock:
        provider = _otel.get(url)
        if provider is None:
            provider = _otel[url] = _build_provider(settings, store, url)
        return provider


def _build_provider(settings: Any, store: Any, url: str) -> Any:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.metrics import CallbackOptions, Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    cfg = settings.operations.metrics.otel
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=url), export_interval_millis=cfg.interval_seconds * 1000.0
    )
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "crewkit", "crewkit.profile": settings.profile_name}),
        shutdown_on_exit=True,
    )
    provider._disabled = False  # OTEL_SDK_DISABLED is crewkit's setting for CrewAI's telemetry, not this
    meter = provider.get_meter("crewkit")
    figures = live_figures(settings, store)
    cache: dict[str, Any] = {"at": float("-inf"), "value": None}
    lock = threading.Lock()

    def current() -> tuple[Summary, Summary, Any]:
        with lock:  # one query per export, shared by every instrument's callback
            if time.monotonic() - cache["at"] > 1.0:
                cache["value"], cache["at"] = figures(), time.monotonic()
            return cache["value"]

    def counter(attr: str) -> Any:
        def callback(_options: CallbackOptions) -> list[Any]:
            counted = current()[0]
            return [Observation(float(getattr(s, attr) or 0), _attrs(s)) for s in counted.rows]

        return callback

    def gauge(attr: str, scale: float = 1.0) -> Any:
        def callback(_options: CallbackOptions) -> list[Any]:
            windowed = current()[1]
            return [
                Observation(float(getattr(s, attr)) * scale, _attrs(s))
                for s in windowed.rows
                if getattr(s, attr) is not None
            ]

        return callback

    for name, attr, doc in _COUNTERS:
        meter.create_observable_counter(f"crewkit.{name}", callbacks=[counter(attr)], description=doc)
    for q, attr in (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms")):
        meter.create_observable_gauge(
            f"crewkit.model_call_latency_{q}",
            callbacks=[gauge(attr, 0.001)],
            unit="s",
            description=f"{q} of model call latency over the SLO window",
        )
    for name, attr, doc in _GAUGES:
        meter.create_observable_gauge(f"crewkit.{name}", callbacks=[gauge(attr)], description=doc)
    return provider


def _attrs(s: Stats) -> dict[str, str]:
    return {k: "" if v is None else str(v) for k, v in s.group.items()}


def stop_otel() -> None:
    """Flush and shut the providers this process started (tests, shutdown)."""
    with _otel_lock:
        providers = list(_otel.values())
        _otel.clear()
    for provider in providers:
        provider.shutdown()


# -- `crewkit metrics` ---------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:,.1f}"


def _ratio(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value * 100:.{digits}f}%"


def render_table(summary: Summary, slo_report: Any = None) -> None:
    """`crewkit metrics` as a table on stdout (figures per group, a total line, the SLOs)."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    out = Console(highlight=False)
    if not summary.rows:
        Console(stderr=True, highlight=False).print(
            Text("no metrics recorded in this window (runs record them; try a longer --since)", style="dim")
        )
    else:
        heads = [*summary.by, "calls", "err%", "avail", "p50 ms", "p95 ms", "p99 ms", "/min",
                 "tok in", "tok out", "cost", "cache", "retries"]  # fmt: skip
        lines: list[tuple[list[str], bool]] = []
        for s in (*summary.rows, summary.total):
            is_total = s is summary.total
            label = ["total", *[""] * (len(summary.by) - 1)] if is_total else _labels(s, summary.by)
            cells = [
                *label,
                str(s.calls),
                _ratio(s.error_rate),
                _ratio(s.availability, 3),
                _ms(s.p50_ms),
                _ms(s.p95_ms),
                _ms(s.p99_ms),
                f"{s.throughput_per_min:.2f}",
                f"{s.input_tokens:,}",
                f"{s.output_tokens:,}",
                f"${s.cost_usd:.4f}",
                str(s.cache_hits),
                str(s.retries),
            ]
            lines.append((cells, is_total))
        table = Table(box=None)
        needed = 0
        for i, head in enumerate(heads):
            width = max(len(head), *(len(c[i]) for c, _ in lines))
            needed += width + 2
            table.add_column(
                head, justify="left" if i < len(summary.by) else "right", no_wrap=True, min_width=width
            )
        for cells, is_total in lines:
            table.add_row(*(Text(c, style="bold" if is_total else "") for c in cells))
        out.width = max(out.width, needed)  # never squeeze a column: a narrow terminal wraps the line
        out.print(table)
    if slo_report is not None:
        verdict = {True: "ok", False: "BREACHED", None: "no verdict"}
        note = "" if slo_report.enough else f" (fewer than {slo_report.min_calls} calls: no verdict)"
        out.print(
            Text(
                f"SLOs of profile '{slo_report.profile}' over the last {slo_report.window}: "
                f"{slo_report.calls} calls{note}"
            )  # fmt: skip
        )
        for r in slo_report.results:
            value = "-" if r.value is None else (f"{r.value:g} ms" if r.slo == "p99_ms" else f"{r.value:g}")
            target = f"{r.target:g} ms" if r.slo == "p99_ms" else f"{r.target:g}"
            out.print(Text(f"  {r.slo:<13} {value:>14}  target {target:<10} {verdict[r.ok]}"))


def show(
    settings: Any,
    store: Any,
    since: str,
    by: str,
    fmt: str,
    *,
    check_slo: bool = False,
    now: float | None = None,
) -> int:
    """What `crewkit metrics` prints; returns the exit code (1: an SLO is breached, with --check-slo)."""
    import json
    import sys

    from crewkit.observability import slo

    now = time.time() if now is None else now
    start = metrics.parse_since(since, now)
    keys = tuple(k.strip() for k in by.split(",") if k.strip())
    summary = metrics.summarize(store, start, now + 1e-6, keys)
    if check_slo:
        report, _raised = slo.check(settings, store, now)
    else:
        report = slo.evaluate(settings, store, now)
    if fmt == "json":
        sys.stdout.write(json.dumps(to_json(summary, report), indent=2) + "\n")
    elif fmt == "prometheus":
        sys.stdout.write(prometheus_text(summary, report))
    else:
        render_table(summary, report)
    return 1 if check_slo and report.breached else 0


def start_serving(settings: Any, store: Any, host: str | None, port: int | None) -> str:
    """`crewkit metrics --serve`: the endpoint started (host and port default to
    `metrics.prometheus`); returns its URL. A port that cannot be bound is a UsageError."""
    from crewkit.errors import UsageError

    cfg = settings.operations.metrics.prometheus
    host = host or cfg.host
    port = cfg.port if port is None else port
    try:
        server = serve(settings, store, host, port)
    except OSError as exc:
        raise UsageError(
            f"cannot serve metrics on {host}:{port} ({exc.strerror or exc}); pick a free --port "
            "or set metrics.prometheus.port in config/operations.yaml"
        ) from None
    return f"http://{host}:{server.server_port}/metrics"
