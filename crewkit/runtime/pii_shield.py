"""Mask personal data in what is sent to a hosted model, when the deployment profile says so.

`pii: {redact_hosted: true}` in the run's profile: before each call to a model whose calls leave
the machine (`crewkit.models.providers.hosted`), the messages are replaced by a copy with
e-mails, phone numbers, payment cards, IBANs, the configured national identifiers and secrets
masked (`crewkit.governance.pii`). Local models (the embedded one, Ollama, a server on
localhost) get the text as it is.
"""

from __future__ import annotations

from typing import Any

from crewkit.runtime.hooks import ModelCall, Replay, Subscriber


class PiiShield(Subscriber):
    def __init__(self, settings: Any) -> None:
        from crewkit.models.providers import hosted

        self.national_ids = tuple(settings.profile.pii.national_ids)
        self.hosted = {name for name, entry in settings.models.models.items() if hosted(entry)}

    def before_model(self, call: ModelCall) -> Replay | None:
        if call.model in self.hosted:
            from crewkit.governance import pii

            call.messages = pii.redact_messages(call.messages, self.national_ids)
        return None


def from_settings(settings: Any) -> PiiShield | None:
    return PiiShield(settings) if settings.profile.pii.redact_hosted else None
