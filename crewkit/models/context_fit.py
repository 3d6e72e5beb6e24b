"""What fits a model's context window: config entries at load, a run's inputs at start.

- `check_context(context, params)`: an embedded (llama.cpp) entry must leave room for its
  largest reply (`max_tokens`, `constrained_max_tokens`) plus a minimal prompt; the config
  loader refuses it otherwise, with the file and line.
- `check_inputs_fit(...)`: before a run's first model call, each text input (e.g. the default
  flow's `task`) must fit every prompt that embeds it. The flow's crews say where: each
  `{field}` placeholder in a task's description or expected output (or in its agent's role,
  goal, backstory) is one copy of the input in that task's prompt. A task with an `agent:` is
  read by that agent's role; a task without one (a hierarchical crew's template) by the
  manager role and, through delegation, by every agent of the crew. The input may take
  what is left of that role's model context after the reply room, the template text, CrewAI's
  own framing (`FRAMEWORK_TOKENS`) and `OTHER_PLACEHOLDER_TOKENS` for each value produced
  during the run (a plan step, a result), divided by the number of copies.
- A flow that puts an input into a prompt through a value it builds itself (the default flow's
  `{context}` = "Overall task: <task>") declares those copies:
  `PROMPT_INPUTS = {"executor.subtask": {"task": 1}}` (crew.task -> field -> extra copies).

Tokens are counted with the embedded model's tokenizer; hosted models are estimated at four
characters a token and checked against their `context:` in config/models.yaml. Nothing is
loaded for inputs short enough to fit by a byte bound (a token is at least one byte).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from crewkit.errors import UsageError

if TYPE_CHECKING:
    from crewkit.models.registry import RoleMap
    from crewkit.settings import ModelEntry, Settings

DEFAULT_MAX_TOKENS = 256
DEFAULT_CONSTRAINED_MAX_TOKENS = 640
# The smallest prompt room a context must leave besides the reply: CrewAI's own scaffolding
# (role, goal, backstory, task framing, output format) is ~150-400 tokens before any task text.
MIN_PROMPT_TOKENS = 512
# CrewAI's framing around a task's own text: "You are ...", "Your personal goal is",
# "Current Task:", the expected-output and final-answer lines, the (compacted) output schema
# of a structured task and the chat template's markers. Measured on the default flow's
# planner and verifier prompts (schema included): 150-260 tokens.
FRAMEWORK_TOKENS = 300
# Room kept for each placeholder filled during the run, not from the inputs ({result}, ...).
OTHER_PLACEHOLDER_TOKENS = 64
HOSTED_REPLY_TOKENS = 4096
CHARS_PER_TOKEN = 4

_PLACEHOLDER = re.compile(r"(?<!\{)\{([A-Za-z_][A-Za-z0-9_]*)\}(?!\})")


def reply_room(params: dict[str, Any]) -> int:
    """The most tokens an embedded model's reply may take (constrained replies get more)."""
    return max(
        int(params.get("max_tokens") or DEFAULT_MAX_TOKENS),
        int(params.get("constrained_max_tokens") or DEFAULT_CONSTRAINED_MAX_TOKENS),
    )


def check_context(context: int, params: dict[str, Any]) -> str | None:
    """Why an embedded model entry's context cannot hold a reply plus a minimal prompt, or None."""
    try:
        room = reply_room(params)
    except (TypeError, ValueError):
        return "params 'max_tokens' and 'constrained_max_tokens' must be whole numbers"
    if room <= 0:
        return "params 'max_tokens' and 'constrained_max_tokens' must be positive"
    if context < room + MIN_PROMPT_TOKENS:
        return (
            f"context {context} leaves no room for a prompt: replies reserve up to {room} tokens "
            f"(params max_tokens/constrained_max_tokens) and a prompt needs at least {MIN_PROMPT_TOKENS}; "
            f"set 'context:' to at least {room + MIN_PROMPT_TOKENS} or lower those params"
        )
    return None


@dataclass(frozen=True)
class Reader:
    """One prompt that embeds an input: which crew task, which role reads it, how many copies."""

    crew: str
    task: str
    role: str
    copies: int
    template: str  # the prompt's own text, placeholders removed
    others: int  # placeholders filled during the run


class _Counter:
    """Token counts for one model entry: its tokenizer when embedded, else an estimate."""

    def __init__(self, name: str, entry: ModelEntry, scripted: bool) -> None:
        self.name, self.entry = name, entry
        self.exact = entry.provider == "llamacpp" and not scripted
        self._llm: Any = None

    def upper(self, text: str) -> int:
        """A cheap upper bound (no model loaded)."""
        if self.exact:
            return len(text.encode("utf-8")) + 2
        return self.count(text)

    def count(self, text: str) -> int:
        if not self.exact:
            return -(-len(text) // CHARS_PER_TOKEN)
        if self._llm is None:
            from crewkit.models.providers import PROVIDERS

            self._llm = PROVIDERS["llamacpp"].build(self.name, self.entry)
        return int(self._llm.count_text_tokens(text))

    def reply(self) -> int:
        if self.entry.provider == "llamacpp":
            return reply_room(self.entry.params)
        # hosted: its max_tokens param, else an eighth of the window (at most HOSTED_REPLY_TOKENS)
        return int(self.entry.params.get("max_tokens") or min(HOSTED_REPLY_TOKENS, self.entry.context // 8))


def readers(
    settings: Settings,
    role_map: RoleMap,
    crew_names: list[str],
    field: str,
    declared: dict[str, dict[str, int]] | None = None,
) -> list[Reader]:
    """Every prompt of these crews that embeds the input `field`, with the role that reads it.

    `declared` adds copies a flow puts in through values it builds ("crew.task" -> field -> n).
    """
    from crewkit import assembly

    found: list[Reader] = []
    for crew_name in crew_names:
        spec = assembly.load_spec(settings, crew_name, role_map)
        agents: dict[str, Any] = spec.agents.data or {}
        for task_key, task in (spec.tasks.data or {}).items():
            own = f"{task.get('description') or ''}\n{task.get('expected_output') or ''}"
            agent_key = task.get("agent")
            if agent_key in agents:
                groups = [(agents[agent_key], [role_map.resolve_role(agents[agent_key].get("llm"))])]
            else:  # delegated: the manager reads it, then hands it to a coworker
                groups = [({}, ["manager"])] + [
                    (info, [role_map.resolve_role(info.get("llm"))]) for info in agents.values()
                ]
            for info, roles in groups:
                persona = "\n".join(str(info.get(k) or "") for k in ("role", "goal", "backstory"))
                text = f"{persona}\n{own}"
                names = _PLACEHOLDER.findall(text)
                extra = int((declared or {}).get(f"{crew_name}.{task_key}", {}).get(field, 0))
                copies = names.count(field) + extra
                if not copies:
                    continue
                for role in roles:
                    if role not in settings.models.roles:
                        continue
                    found.append(
                        Reader(
                            crew=crew_name,
                            task=task_key,
                            role=role,
                            copies=copies,
                            template=_PLACEHOLDER.sub("", text),
                            others=max(0, len([n for n in names if n != field]) - extra),
                        )
                    )
    return found


def check_inputs_fit(settings: Settings, role_map: RoleMap, flow_cls: type, inputs: dict[str, Any]) -> None:
    """Refuse, before any model call, a text input too long for a prompt that embeds it.

    Raises UsageError: `--inputs: field 'task' is 9,800 tokens; role 'reasoning' (model
    'local-small', 8192-token context) fits at most 5,400; shorten it or map the role to a
    larger-context model`.
    """
    from crewkit import assembly

    texts = {k: v for k, v in inputs.items() if isinstance(v, str) and v}
    if not texts:
        return
    crew_names = list(getattr(flow_cls, "CREWS", None) or assembly.discover(settings))
    counters: dict[str, _Counter] = {}

    def counter(role: str) -> tuple[str, _Counter]:
        name = settings.role(role).model
        if name not in counters:
            counters[name] = _Counter(name, settings.models.models[name], role in role_map.overrides)
        return name, counters[name]

    declared = dict(getattr(flow_cls, "PROMPT_INPUTS", None) or {})
    for field, value in texts.items():
        worst: tuple[int, int, Reader, str, _Counter] | None = None  # (limit, tokens, ...)
        for reader in readers(settings, role_map, crew_names, field, declared):
            model, count = counter(reader.role)
            context = count.entry.context
            fixed = count.reply() + FRAMEWORK_TOKENS + reader.others * OTHER_PLACEHOLDER_TOKENS
            if count.upper(value) * reader.copies <= context - fixed - count.upper(reader.template):
                continue  # fits even by the byte bound: nothing to load or count
            tokens = count.count(value)
            limit = max(0, (context - fixed - count.count(reader.template)) // reader.copies)
            if tokens > limit and (worst is None or limit < worst[0]):
                worst = (limit, tokens, reader, model, count)
        if worst is not None:
            limit, tokens, reader, model, count = worst
            about = "" if count.exact else "about "
            raise UsageError(
                f"--inputs: field '{field}' is {about}{tokens:,} tokens; role '{reader.role}' (model "
                f"'{model}', {count.entry.context}-token context) fits at most {about}{limit:,} "
                f"(crew '{reader.crew}', task '{reader.task}'); shorten it or map the role to a "
                "larger-context model in config/models.yaml"
            )
