"""The shipped handoff alarms, evaluated over a simulated target outage with the metrics SQS reports.

SQS leaves a message received three times and not deleted out of ApproximateAgeOfOldestMessage
(docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html),
and the drain receives a waiting write again on its backoff (1, 2, 4... minutes, core/backoff.py). So the
age alarm stays quiet through an outage however long; the waiting alarm (messages not visible, every
period) is the one that fires. Both alarms come from the synthesized template; the metric values follow
SQS's rules (ddbrep/local/engine_server.py computes the age the same way for the local runtime).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from ddbrep.local.alarms import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    Alarm,
    datapoints,
    decide,
    evaluation_window,
    resolve_alarm,
)
from ddbrep.local.engine_server import age_of_oldest_message
from ddbrep.local.templates import Resolver, parse_stack
from replicator.core.backoff import HANDOFF_BACKOFF
from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.infra

REGION, TARGET = "us-east-1", "eu-west-1"
START = 1_800_000_000.0  # epoch seconds, on a period boundary


@dataclass
class Waiting:
    """A handed-off write whose target is down: the drain receives it on its backoff and fails."""

    sent_timestamp: float  # ms, as moto and SQS keep it
    approximate_receive_count: int = 0
    visible_at: float = 0.0  # s


def shipped_alarms(synth: Synthesized) -> dict[str, Alarm]:
    template = synth.template(REGION)
    stack = parse_stack("stack", REGION, "123456789012", template)
    resolver = Resolver(stack, refs={logical_id: logical_id for logical_id in template["Resources"]})
    return {spec.name: resolve_alarm(spec, REGION, stack.account, resolver) for spec in stack.alarms}


def outage(minutes: int, new_write_every_s: float | None) -> dict[str, list[tuple[float, float]]]:
    """Per-minute samples of the handoff queue's SQS metrics while its target is down."""
    messages: list[Waiting] = []
    samples: dict[str, list[tuple[float, float]]] = {"age": [], "not_visible": []}
    next_write = START
    for second in range(minutes * 60):
        now = START + second
        while next_write <= now:  # a write handed off (the first at once)
            messages.append(Waiting(sent_timestamp=next_write * 1000, visible_at=next_write + 1))
            next_write = next_write + new_write_every_s if new_write_every_s else float("inf")
        for message in messages:  # the drain receives what is visible, fails, sets the backoff
            if message.visible_at <= now:
                message.approximate_receive_count += 1
                message.visible_at = now + HANDOFF_BACKOFF.ceiling(message.approximate_receive_count)
        if second % 60 == 30:  # SQS's one-minute metrics
            age = age_of_oldest_message(messages, now * 1000)
            if age is not None:
                samples["age"].append((now, age))
            samples["not_visible"].append((now, float(sum(m.visible_at > now for m in messages))))
    return samples


def state_after(alarm: Alarm, samples: list[tuple[float, float]], minutes: int) -> str:
    now = START + minutes * 60
    start, end = evaluation_window(alarm, now)
    periods = {p.at: p for p in datapoints(samples, alarm.query.stat, alarm.query.period, start, end)}
    period = alarm.query.period
    window = [periods.get(start + i * period) for i in range(alarm.evaluation_periods)]
    return decide(alarm, window, OK).state


@pytest.mark.parametrize("new_write_every_s", [None, 20.0], ids=["one write", "a write every 20 s"])
def test_a_target_down_for_an_hour_alarms_on_waiting_writes_not_on_their_age(
    mesh3: Synthesized, new_write_every_s: float | None
) -> None:
    alarms = shipped_alarms(mesh3)
    prefix = f"orders-replication-{REGION}-"
    age = alarms[f"{prefix}handoff-{TARGET}-Queue-Message-Age-Max-Critical"]
    waiting = alarms[f"{prefix}handoffs-handoff-waiting-{REGION}-to-{TARGET}-Critical"]
    assert age.query.metric_name == "ApproximateAgeOfOldestMessage" and age.threshold == 900
    # Given a target down for an hour, with writes handed off to it
    samples = outage(60, new_write_every_s)
    # Then after an hour the age alarm has not fired: SQS no longer counts the writes the drain retries
    # (with no new write it reports nothing at all: INSUFFICIENT_DATA)
    assert max((v for _t, v in samples["age"]), default=0.0) < age.threshold
    assert state_after(age, samples["age"], 60) == (INSUFFICIENT_DATA if new_write_every_s is None else OK)
    # but the waiting alarm has, and it had not before the writes had waited 15 minutes
    assert state_after(waiting, samples["not_visible"], 60) == ALARM
    assert state_after(waiting, samples["not_visible"], 10) == OK
