"""Arena battles: one prompt, two anonymised models, one human vote, kept in state.db.

`battle(settings, prompt, models=(A, B))` asks both models (in random order: the first shown is
"Model A"), stores the battle as pending in `arena_battles` and returns it; `vote(store, id,
choice)` records the one vote a battle takes (a, b, tie, bothbad -> FastChat's winners) and an
`arena.vote` audit record in the same transaction, and reveals the names. Prompts and answers are
redacted (`crewkit.redact`) before they are stored. `voted(store)` gives the voted battles as
`votes.Battle` objects (time of the vote as `tstamp`, as FastChat) for the leaderboard, and
`export(store, out)` writes them as FastChat JSONL. The web console calls the same functions.
"""

from __future__ import annotations

import json
import random
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from crewkit.errors import Conflict, ModelCallFailed, NotFound, UsageError
from crewkit.evaluation.votes import Battle, write_jsonl
from crewkit.redact import redact

CHOICES = {"a": "model_a", "b": "model_b", "tie": "tie", "bothbad": "tie (bothbad)"}
_COLS = "id, tstamp, prompt, model_a, model_b, answer_a, answer_b, winner, voter, voted, extra"


@dataclass(frozen=True)
class ArenaBattle:
    id: str
    tstamp: float
    prompt: str
    model_a: str  # shown as "Model A"
    model_b: str  # shown as "Model B"
    answer_a: str | None
    answer_b: str | None
    winner: str | None = None  # FastChat's winner once voted
    voter: str | None = None
    voted: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def pending(self) -> bool:
        return self.winner is None

    def as_vote(self) -> Battle:
        """The FastChat battle line (only for a voted battle)."""
        extra = {
            "question_id": self.id,
            **self.extra,
            "conversation_a": _conversation(self.prompt, self.answer_a),
            "conversation_b": _conversation(self.prompt, self.answer_b),
        }
        return Battle(
            self.model_a,
            self.model_b,
            self.winner or "",
            self.voted or self.tstamp,
            extra,
            source=f"state.db battle {self.id}",
        )


def _conversation(prompt: str, answer: str | None) -> list[dict[str, str]]:
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer or ""}]


def _row(row: tuple[Any, ...]) -> ArenaBattle:
    return ArenaBattle(*row[:10], extra=json.loads(row[10] or "{}"))


def check_models(settings: Any, models: Sequence[str]) -> tuple[str, str]:
    """Two distinct model names defined in config/models.yaml, or a one-line UsageError."""
    from crewkit.settings import suggest

    names = [m.strip() for m in models if m and m.strip()]
    if len(names) != 2:
        raise UsageError(f"a battle needs exactly two models, got {len(names)}; pass --models A,B")
    defined = settings.models.models
    for name in names:
        if name not in defined:
            raise UsageError(
                f"unknown model '{name}'{suggest(name, defined)}; models are the entries of "
                "config/models.yaml (crewkit models list)"
            )
        if not defined[name].can("text"):
            raise UsageError(f"model '{name}' is an embedder, not a chat model; pick two chat models")
    if names[0] == names[1]:
        raise UsageError(f"both models are '{names[0]}'; a battle needs two different models")
    return names[0], names[1]


def _ask(settings: Any, name: str, prompt: str, llms: dict[str, Any] | None) -> str:
    if llms and name in llms:
        llm = llms[name]
    else:
        from crewkit.errors import ModelUnavailable
        from crewkit.models.providers import PROVIDERS
        from crewkit.models.registry import RoleMap

        entry = settings.models.models[name]
        missing = PROVIDERS[entry.provider].missing("arena", name, entry)
        if missing:
            raise ModelUnavailable(missing.replace("role 'arena' uses model", "the arena battle uses model"))
        llm = RoleMap(settings)._model(name)
    try:
        answer = llm.call([{"role": "user", "content": prompt}])
    except UsageError:
        raise
    except Exception as exc:  # a provider's error: one line naming the model, the battle is not stored
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelCallFailed(f"model '{name}' failed to answer the battle prompt: {redact(line)}") from None
    return redact(answer if isinstance(answer, str) else str(answer))


def battle(
    settings: Any,
    prompt: str,
    models: Sequence[str],
    llms: dict[str, Any] | None = None,
    *,
    store: Any = None,
    rng: random.Random | None = None,
    voter: str | None = None,
) -> ArenaBattle:
    """Ask both models `prompt` (in random order), store the battle as pending, return it.

    `llms`: model name -> an LLM object to use instead of building one (tests inject fakes).
    Nothing is stored when a model fails."""
    from crewkit.runtime.store import StateStore

    if not prompt or not prompt.strip():
        raise UsageError("the battle prompt is empty; give the text both models should answer")
    pair = list(check_models(settings, models))
    (rng or random.SystemRandom()).shuffle(pair)
    answers = [_ask(settings, name, prompt, llms) for name in pair]
    store = store or StateStore.open(settings.home)
    fight = ArenaBattle(
        id="ab-" + secrets.token_hex(5),
        tstamp=time.time(),
        prompt=redact(prompt),
        model_a=pair[0],
        model_b=pair[1],
        answer_a=answers[0],
        answer_b=answers[1],
        extra={"anony": True},
    )
    from crewkit.governance import audit

    with store.write() as conn:
        conn.execute(
            f"INSERT INTO arena_battles ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, NULL, ?)",
            (
                fight.id,
                fight.tstamp,
                fight.prompt,
                fight.model_a,
                fight.model_b,
                fight.answer_a,
                fight.answer_b,
                json.dumps(fight.extra),
            ),
        )
        audit.append(
            conn,
            audit.Entry("arena.battle", fight.id, {"models": sorted(pair)}, actor=voter or _user()),
        )
    return fight


def _user() -> str:
    from crewkit.governance.approvals import current_user

    return current_user()


def get(store: Any, battle_id: str) -> ArenaBattle:
    rows = store.read(f"SELECT {_COLS} FROM arena_battles WHERE id = ?", (battle_id,))
    if not rows:
        raise _unknown(store, battle_id)
    return _row(rows[0])


def _unknown(store: Any, battle_id: str) -> NotFound:
    from crewkit.settings import suggest

    ids = [r[0] for r in store.read("SELECT id FROM arena_battles ORDER BY tstamp DESC LIMIT 200")]
    return NotFound(
        f"unknown battle '{battle_id}'{suggest(battle_id, ids)}; "
        "pending battles are listed by 'crewkit arena pending'"
    )


def vote(store: Any, battle_id: str, choice: str, *, voter: str | None = None) -> ArenaBattle:
    """Record the vote (a | b | tie | bothbad) on a pending battle; a battle takes one vote only.
    The vote and its `arena.vote` audit record commit together. Returns the battle, names revealed."""
    from crewkit.governance import audit

    winner = CHOICES.get(choice.strip().lower() if isinstance(choice, str) else "")
    if winner is None:
        raise UsageError(f"vote '{choice}' is not one of a, b, tie, bothbad")
    who = voter or _user()
    with store.write() as conn:
        rows = conn.execute(f"SELECT {_COLS} FROM arena_battles WHERE id = ?", (battle_id,)).fetchall()
        if not rows:
            raise _unknown(store, battle_id)
        found = _row(rows[0])
        if not found.pending:
            raise Conflict(
                f"battle '{battle_id}' already has a vote ({found.winner}); a battle takes one vote, "
                "start a new one with 'crewkit arena battle'"
            )
        now = time.time()
        conn.execute(
            "UPDATE arena_battles SET winner = ?, voter = ?, voted = ? WHERE id = ? AND winner IS NULL",
            (winner, who, now, battle_id),
        )
        audit.append(
            conn,
            audit.Entry(
                "arena.vote",
                battle_id,
                {"winner": winner, "model_a": found.model_a, "model_b": found.model_b},
                actor=who,
            ),
        )
    return ArenaBattle(**{**found.__dict__, "winner": winner, "voter": who, "voted": now})


def pending(store: Any, limit: int | None = None) -> list[ArenaBattle]:
    sql = f"SELECT {_COLS} FROM arena_battles WHERE winner IS NULL ORDER BY tstamp DESC"
    rows = store.read(sql + (" LIMIT ?" if limit else ""), (limit,) if limit else ())
    return [_row(r) for r in rows]


def voted(store: Any) -> list[Battle]:
    """Every voted battle as a FastChat battle, in the order of the votes."""
    rows = store.read(f"SELECT {_COLS} FROM arena_battles WHERE winner IS NOT NULL ORDER BY voted, tstamp")
    return [_row(r).as_vote() for r in rows]


def export(store: Any, out: IO[str]) -> int:
    """Write the voted battles as FastChat JSONL; returns how many."""
    return write_jsonl(voted(store), out)
