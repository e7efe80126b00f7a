"""Limits of the caller WebSocket: what one caller may send and take (docs/protocol.md, Limits).

Every limit ends the call the same way: a fatal ``error`` event with the limit's code, the
WebSocket closed with the limit's close code, and ``Conversation.status = error`` with the
reason in ``end_reason`` (plus the error event in the call's ``CallEvent`` rows when the
call was open). The duration limit first lets the agent say goodbye
(``PARLEY_TIME_LIMIT_GOODBYE``, spoken by its TTS as a last agent turn).
"""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    """One limit: its error ``code`` and the WebSocket ``close_code`` it ends the call with."""

    code: str
    close_code: int


#: The agent already has ``max_concurrent_calls`` calls (refused at connect; 503: at capacity).
CALL_LIMIT_REACHED = Limit("call_limit_reached", 4503)
#: The call lasted ``max_call_duration_s`` (408: time-out).
CALL_DURATION_EXCEEDED = Limit("call_duration_exceeded", 4408)
#: A binary frame larger than ``PARLEY_MAX_FRAME_BYTES`` (413: payload too large).
FRAME_TOO_LARGE = Limit("frame_too_large", 4413)
#: A control message larger than ``PARLEY_MAX_CONTROL_BYTES`` (413).
MESSAGE_TOO_LARGE = Limit("message_too_large", 4413)
#: Messages faster than ``PARLEY_MAX_FRAMES_PER_S`` beyond the burst allowance (429).
FRAME_RATE_EXCEEDED = Limit("frame_rate_exceeded", 4429)


class TokenBucket:
    """A token bucket: ``rate_per_s`` tokens a second, at most ``burst`` held.

    It starts full, so a caller may send ``burst`` messages at once and then ``rate_per_s``
    a second on average. :meth:`take` is O(1) and allocation-free (called once per frame).
    """

    __slots__ = ("_at", "_tokens", "burst", "rate_per_s")

    def __init__(self, *, rate_per_s: float, burst: int, now: float | None = None) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a token bucket needs rate_per_s > 0 and burst >= 1")
        self.rate_per_s = rate_per_s
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at = time.monotonic() if now is None else now

    def take(self, *, now: float | None = None) -> bool:
        """Spend one token; ``False`` (nothing spent) when the bucket is empty."""
        now = time.monotonic() if now is None else now
        tokens = min(self.burst, self._tokens + (now - self._at) * self.rate_per_s)
        self._at = now
        if tokens < 1.0:
            self._tokens = tokens
            return False
        self._tokens = tokens - 1.0
        return True
