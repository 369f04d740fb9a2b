"""The per-job hook that answers solver callbacks (``APP_MESSAGE``, §A10, §B4.7.3), sans I/O.

The core answers every ``APP_MESSAGE`` the moment it is decoded, like a pong: the answer is
returned ahead of any event of that frame, and the drivers hand such frames to the core as soon as
they read them (:mod:`.replies`), so a slow run-log consumer never delays it. A job followed with
an :class:`AppMessageHandler` gets its answers (and any progress events) from the handler; without
one, or for a job not followed on this socket, the core answers ``interruptSolve: false`` so that a
waiting callback never fails someone's job after the server's limit (60 s by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from airflow_insight.protocol import events, messages

__all__ = ["AppMessageHandler", "default_answer"]


class AppMessageHandler(Protocol):
    """Answers the solver callbacks of one followed job (e.g. progress tracking, stop rules).

    ``now`` is the driver's clock reading when the message was decoded. The handler must not do
    I/O or block: it runs inside the core's ``receive_text``. It returns the response to send
    (for the same ``computeJobId`` and ``appMessageId``) and the events to emit after it. An
    exception from the handler is survived: the core answers ``interruptSolve: false`` and
    reports the error as a :class:`~airflow_insight.protocol.events.MessageRejected`.
    """

    def answer(
        self, message: messages.AppMessage, now: float
    ) -> tuple[messages.AppMessageResponse, Sequence[events.HandlerEvent]]:
        """The response to ``message`` and the events it produced."""
        ...


def default_answer(message: messages.AppMessage) -> messages.AppMessageResponse:
    """The answer without a handler: acknowledge, let the solve go on, change no control."""
    return messages.AppMessageResponse(message.compute_job_id, message.app_message_id)
