"""How long a handed-off write waits before its next replay: capped exponential backoff per message.

The drain sets each failed message's visibility timeout to ``delay(ApproximateReceiveCount)``.
The schedule must keep a message replaying for the handoff queue's whole retention (14 days) within
the queue's maxReceiveCount, or it would move to the dead-letter queue while its target may still
come back; and the cap bounds how long a write waits once the target answers again. Both relations
are checked at synthesis (stacks/config/parse.py) with :meth:`Backoff.least_total`.
"""

from __future__ import annotations

from dataclasses import dataclass

SQS_MAX_VISIBILITY_SECONDS = 12 * 3600


@dataclass(frozen=True)
class Backoff:
    """Delay before receive ``n + 1`` after receive ``n`` failed: ``min(cap, base * 2**(n-1))``, less up to
    ``jitter`` of it at random (so messages handed off together spread out, and a delay never falls
    below ``(1 - jitter)`` of its ceiling: that floor is what keeps the total over the retention)."""

    base_seconds: int
    cap_seconds: int
    jitter: float

    def __post_init__(self) -> None:
        if not 0 < self.base_seconds <= self.cap_seconds <= SQS_MAX_VISIBILITY_SECONDS:
            raise ValueError(
                f"backoff needs 0 < base ({self.base_seconds}) <= cap ({self.cap_seconds}) <= "
                f"{SQS_MAX_VISIBILITY_SECONDS} s (SQS's largest visibility timeout)"
            )
        if not 0 <= self.jitter < 1:
            raise ValueError(f"jitter {self.jitter} must be in [0, 1)")

    def ceiling(self, receive_count: int) -> int:
        """The delay after the ``receive_count``-th receive failed, before jitter."""
        exponent = min(max(receive_count, 1) - 1, 32)  # 2**32 * base is past any cap
        return min(self.cap_seconds, self.base_seconds * (1 << exponent))

    def delay(self, receive_count: int, draw: float) -> int:
        """The visibility timeout to set; ``draw`` is uniform in [0, 1) (random.random())."""
        ceiling = self.ceiling(receive_count)
        return max(1, round(ceiling * (1 - self.jitter * draw)))

    def least_total(self, receives: int) -> float:
        """The shortest time ``receives`` failed receives can span (every draw at its worst)."""
        return sum(self.ceiling(n) * (1 - self.jitter) for n in range(1, receives + 1))

    def receives_to_span(self, seconds: float) -> int:
        """The most receives a message can take before ``seconds`` have passed since its first one,
        plus the one that succeeds: what an outage of ``seconds`` costs per message at most."""
        receives, waited = 1, 0.0
        while waited < seconds:
            waited += self.ceiling(receives) * (1 - self.jitter)
            receives += 1
        return receives


# 1, 2, 4, 8, 16 minutes, then every 30 minutes (27 to 30 with jitter). Over 1000 receives (SQS's
# largest maxReceiveCount) the least total is about 18.7 days: more than the 14-day retention with a
# third to spare. A write waits at most 30 minutes after its target answers again.
HANDOFF_BACKOFF = Backoff(base_seconds=60, cap_seconds=1800, jitter=0.1)
