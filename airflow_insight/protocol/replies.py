"""The replies the core makes by itself, without its caller: pongs and solver-callback answers.

Two server messages wait for an answer with a limit of their own: a JSON ``PING`` (the server
closes an idle socket) and an ``APP_MESSAGE`` (the server interrupts the solve, 60 s by default,
§A10). Both are answered the moment they are decoded, never behind the run-log lines that
arrived before them: :func:`needs_immediate_reply` tells a driver which frames to hand to the
core at once, where it reads them (its reader thread or task), instead of queueing them behind
a backlog of run-log frames that a slow line sink has not taken yet. The answers' events keep
their place in the order of frames; only the reply jumps the queue.
"""

from __future__ import annotations

import dataclasses
import json

from airflow_insight.protocol import messages as m
from airflow_insight.protocol.appmessages import AppMessageHandler, default_answer
from airflow_insight.protocol.events import AppMessageAnswered, Event, MessageRejected

__all__ = ["answer_app_message", "needs_immediate_reply"]

#: The message types answered at once, as they appear in a frame's text (quoted: inside a JSON
#: string a quote is escaped, so a run-log line can hold these only as a whole line).
_URGENT_TEXT = tuple(f'"{kind}"' for kind in (m.PING, m.APP_MESSAGE))
_URGENT_BYTES = tuple(text.encode() for text in _URGENT_TEXT)


def needs_immediate_reply(data: str | bytes) -> bool:
    """True for a frame that must be answered at once (a JSON ``PING``, an ``APP_MESSAGE``).

    Cheap for the frames that matter for throughput: a run-log batch is only scanned for the
    two quoted names, and decoded only when one appears (a line that is exactly ``PING``).
    Undecodable text is not urgent: the core rejects it in its turn.
    """
    if isinstance(data, bytes):
        found = any(name in data for name in _URGENT_BYTES)
    else:
        found = any(name in data for name in _URGENT_TEXT)
    if not found:
        return False
    try:
        envelope = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(envelope, dict) and envelope.get("messageType") in (m.PING, m.APP_MESSAGE)


def answer_app_message(
    message: m.AppMessage, handler: AppMessageHandler | None, now: float
) -> tuple[m.AppMessageResponse, list[Event]]:
    """The response to ``message`` and the events to emit after it (§A10).

    Without a handler (no callbacks asked for, or a job not followed here) the default answer
    lets the solve go on, and the event warns. A handler's exception is survived with the
    default answer; the answer always names the message it answers, whatever the handler said.
    """
    answered = AppMessageAnswered(
        message.compute_job_id, message.app_message_id, message.app_message_type
    )
    if handler is None:
        return default_answer(message), [answered]
    answered = dataclasses.replace(answered, handled=True)
    try:
        response, produced = handler.answer(message, now)
    except Exception as exc:  # A handler's bug must not leave the solve waiting.
        return default_answer(message), [
            answered,
            MessageRejected(f"app message handler failed: {exc!r}"),
        ]
    response = dataclasses.replace(
        response, compute_job_id=message.compute_job_id, app_message_id=message.app_message_id
    )
    answered = dataclasses.replace(answered, interrupt_solve=response.interrupt_solve)
    return response, [answered, *produced]
