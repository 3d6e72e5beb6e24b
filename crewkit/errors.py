"""The one exception tree. Every message says what went wrong and what to do next.

The CLI turns a `CrewkitError` into one line and the exit code below; anything else is a
programming error and keeps its traceback.
"""

from __future__ import annotations


class CrewkitError(Exception):
    """Base of every error a user can act on.

    `http_status` is what the web console (`crewkit.web`) answers with for it."""

    exit_code = 1
    http_status = 500


class UsageError(CrewkitError):
    """Bad command-line input (flags, --inputs JSON, unknown crew or flow)."""

    exit_code = 2
    http_status = 422


class NotFound(UsageError):
    """The named thing does not exist: an unknown run, approval, battle or memory id."""

    http_status = 404


class Conflict(UsageError):
    """The thing exists but its state no longer allows the action: decided, voted, expired."""

    http_status = 409


class NotAllowed(UsageError):
    """This person may not take the action (not an approver of the tier, approving their own run)."""

    http_status = 403


class ConfigError(CrewkitError):
    """A config file is missing, malformed or inconsistent. Message starts with FILE:LINE."""

    exit_code = 2


class FatalModelError(CrewkitError):
    """A model error no retry or fallback can fix: the run stops at once with one line.

    `RoleLLM` does not try the role's fallbacks for it, and crewkit keeps CrewAI's agent
    loop from retrying it (`crewkit.models.fatal`).
    """

    exit_code = 2


class ModelUnavailable(FatalModelError):
    """A configured model cannot be used: missing key, missing or unloadable file."""


class ModelAuthError(FatalModelError):
    """The provider refused the credentials (401/403, invalid or revoked key, no access)."""


class ModelRequestError(FatalModelError):
    """The provider refused the request as written (400/404/422: unknown model, invalid params)."""


class CapabilityError(CrewkitError):
    """A call needs a capability (vision, tools) the role's model does not have."""

    exit_code = 1


class ModelCallFailed(CrewkitError):
    """Every model configured for a role failed (primary and fallbacks)."""

    exit_code = 1


class GuardrailBlocked(CrewkitError):
    """An output guardrail rejected the result after the configured retries."""

    exit_code = 1


class BudgetExceeded(CrewkitError):
    """A model call would exceed a budget: it was not sent, and the run stops as `budget_exceeded`.

    `scope` is the budget's human name ("per-run budget of run r-1"), `limit` (with grants) and
    `spent` are USD; `held` is what calls in flight have reserved, `needed` the refused call's estimate.
    """

    exit_code = 1

    def __init__(
        self,
        message: str,
        scope: str = "",
        limit: float = 0.0,
        spent: float = 0.0,
        *,
        held: float = 0.0,
        needed: float = 0.0,
        scope_key: str = "",
        period: str = "",
    ) -> None:
        super().__init__(message)
        self.scope = scope
        self.limit = limit
        self.spent = spent
        self.held = held
        self.needed = needed
        self.scope_key = scope_key
        self.period = period


class RunFailed(CrewkitError):
    """A flow run ended in failure; the run record holds the details."""

    exit_code = 1


class StateStoreError(CrewkitError):
    """state.db cannot be used as it is (newer schema, corrupt, unwritable). Names the file and the fix."""

    exit_code = 2


class MemoryError_(CrewkitError):  # noqa: N801 - the builtin MemoryError is taken
    """Long-term memory cannot do what was asked (store locked or unreachable, wrong vector size,
    bad text, unknown id): one line naming the store or item and the fix."""

    exit_code = 2


class ApprovalRequired(CrewkitError):
    """The run needs a person's decision; it is checkpointed and waits (exit 75)."""

    exit_code = 75

    def __init__(self, message: str, approval_id: str) -> None:
        super().__init__(message)
        self.approval_id = approval_id


class RunPaused(BaseException):  # noqa: N818 - a control signal, like KeyboardInterrupt
    """Carries an `ApprovalRequired` out of CrewAI's agent loops to the flow's step boundary.

    A BaseException on purpose: CrewAI's executors and hook dispatch catch `Exception` (a tool
    error goes back to the model, a failing hook is swallowed), and a pause must not be either.
    """

    def __init__(self, required: ApprovalRequired) -> None:
        super().__init__(str(required))
        self.required = required


class RunRejected(CrewkitError):
    """A person (or the expiry policy) rejected the run's result; the run ends as `rejected`."""

    exit_code = 1
