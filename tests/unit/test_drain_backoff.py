"""The drain's per-message backoff keeps a handed-off write replaying for the queue's whole retention.

The schedule itself is checked as a pure function; then a compressed clock drives the real code for
two weeks: the Replicator hands writes off (tests/unit/sim.py's mesh), a fake SQS queue per target
honours visibility timeouts, ChangeMessageVisibility, maxReceiveCount (redrive to a DLQ) and the
retention period on a simulated clock, and each received message goes through the real Drainer with
the real backoff. Simulated time jumps from one event to the next: nothing here waits.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from replicator.core.backoff import HANDOFF_BACKOFF, SQS_MAX_VISIBILITY_SECONDS, Backoff
from replicator.drain_core import Drainer, DrainFailed
from replicator.settings import Target
from stacks import defaults
from stacks.config import ConfigError, check_handoff_schedule
from tests.unit.sim import Mesh

DAY = 86_400
RETENTION = defaults.HANDOFF_RETENTION_DAYS * DAY
VISIBILITY = defaults.DRAIN_TIMEOUT_SECONDS * defaults.HANDOFF_VISIBILITY_FACTOR
US, EU, AP = "us-east-1", "eu-west-1", "ap-southeast-2"
T0 = 1_700_000_000.0


# --- the schedule ------------------------------------------------------------------------------------


def test_the_delay_doubles_from_one_minute_to_a_thirty_minute_cap() -> None:
    # Given the deployed schedule; When the delays after each failed receive are computed without jitter
    ceilings = [HANDOFF_BACKOFF.delay(n, draw=0.0) for n in range(1, 9)]
    # Then they double from the base and stop at the cap
    assert ceilings == [60, 120, 240, 480, 960, 1800, 1800, 1800]
    # And a receive count far past maxReceiveCount still gets the cap, within SQS's 12-hour limit
    assert HANDOFF_BACKOFF.delay(10_000, draw=0.0) == 1800 <= SQS_MAX_VISIBILITY_SECONDS


def test_jitter_only_shortens_a_delay_and_never_below_its_floor() -> None:
    # Given many random draws; When delays are computed for a capped receive
    rng = random.Random(3)
    delays = {HANDOFF_BACKOFF.delay(40, rng.random()) for _ in range(2000)}
    # Then they spread over [(1 - jitter) * cap, cap] and nowhere else
    assert min(delays) >= 1800 * (1 - HANDOFF_BACKOFF.jitter)
    assert max(delays) <= 1800
    assert len(delays) > 100


def test_max_receive_count_receives_outlast_the_retention_with_margin() -> None:
    # Given the deployed receive count; When the shortest time its receives can span is computed
    span = HANDOFF_BACKOFF.least_total(defaults.HANDOFF_MAX_RECEIVE_COUNT)
    # Then it exceeds 14 days by the required margin (about 18.7 days)
    assert span >= RETENTION * defaults.HANDOFF_BACKOFF_MARGIN
    # And synthesis accepts every retention the config allows
    for days in range(1, 15):
        check_handoff_schedule("replication.handoff_retention_days", days)


def test_synthesis_refuses_a_schedule_that_would_reach_the_dlq_before_the_retention_ends() -> None:
    # Given the queue's old behaviour as a schedule: every 6 minutes, 1000 receives (about 4 days)
    every_six_minutes = Backoff(base_seconds=VISIBILITY, cap_seconds=VISIBILITY, jitter=0.0)
    # When the 14-day retention is checked against it
    with pytest.raises(ConfigError) as raised:
        check_handoff_schedule("replication.handoff_retention_days", 14, backoff=every_six_minutes)
    # Then the error names the key, the span and the fix
    message = str(raised.value)
    assert "replication.handoff_retention_days = 14 days" in message
    assert "span only 4.2 days" in message and "Fix:" in message


# --- a fake SQS queue on a simulated clock -----------------------------------------------------------


@dataclass
class Message:
    id: str
    body: str
    sent_at: float
    visible_at: float
    receive_count: int = 0
    handle: str = ""
    replayed_at: float | None = None


@dataclass
class FakeQueue:
    """One standard queue with a redrive policy, as SQS behaves on the points the drain relies on."""

    name: str
    visibility_timeout: int = VISIBILITY
    max_receive_count: int = defaults.HANDOFF_MAX_RECEIVE_COUNT
    retention: int = RETENTION
    messages: dict[str, Message] = field(default_factory=dict)
    dead_letter_queue: list[Message] = field(default_factory=list)
    expired: list[Message] = field(default_factory=list)
    done: list[Message] = field(default_factory=list)
    _handles: int = 0

    def send(self, body: str, now: float) -> None:
        message_id = f"{self.name}-{len(self.messages) + len(self.done) + len(self.expired)}"
        self.messages[message_id] = Message(message_id, body, sent_at=now, visible_at=now)

    def next_visible(self) -> float | None:
        return min((m.visible_at for m in self.messages.values()), default=None)

    def receive(self, now: float, limit: int) -> list[Message]:
        for message in list(self.messages.values()):
            if now >= message.sent_at + self.retention:  # retention counts from the first send
                self.expired.append(self.messages.pop(message.id))
        received = []
        for message in sorted(self.messages.values(), key=lambda m: m.visible_at):
            if len(received) == limit or message.visible_at > now:
                continue
            message.receive_count += 1
            if message.receive_count > self.max_receive_count:  # the redrive policy moves it
                self.dead_letter_queue.append(self.messages.pop(message.id))
                continue
            self._handles += 1
            message.handle = f"{message.id}#{self._handles}"
            message.visible_at = now + self.visibility_timeout
            received.append(message)
        return received

    def change_visibility(self, handle: str, seconds: int, now: float) -> None:
        if not 0 <= seconds <= SQS_MAX_VISIBILITY_SECONDS:
            raise ValueError(f"VisibilityTimeout {seconds} out of range")
        (message,) = [m for m in self.messages.values() if m.handle == handle]  # only the latest receipt
        message.visible_at = now + seconds

    def delete(self, handle: str, now: float) -> None:
        (message,) = [m for m in self.messages.values() if m.handle == handle]
        message.replayed_at = now
        self.done.append(self.messages.pop(message.id))


@dataclass
class Simulation:
    """A three-region mesh writing in us-east-1; its handoffs land in per-target fake queues."""

    outages: dict[str, float]  # target region -> simulated time it answers again
    write_every: float
    writes_until: float
    backoff: Backoff = HANDOFF_BACKOFF
    now: float = T0
    mesh: Mesh = field(init=False)
    queues: dict[str, FakeQueue] = field(init=False)
    drainers: dict[str, Drainer] = field(init=False)

    def __post_init__(self) -> None:
        self.mesh = Mesh([US, EU, AP])
        self.queues = {region: FakeQueue(region) for region in (EU, AP)}
        settings = self.mesh.replicators[US].settings
        rng = random.Random(11)
        self.drainers = {
            region: Drainer(
                settings,
                settings.target(region),
                self.mesh.ports[US],
                clock=lambda: self.now,
                backoff=self.backoff,
                draw=rng.random,
            )
            for region in self.queues
        }

    # The drain's HandoffQueue port: the fake queue of the message's target, on the simulated clock.
    def postpone_handoff(self, target: Target, receipt_handle: str, seconds: int) -> bool:
        self.queues[target.region].change_visibility(receipt_handle, seconds, self.now)
        return True

    def run(self) -> None:
        app = self.mesh.app(US, [int(T0 * 1_000_000)])
        ports = self.mesh.ports[US]
        next_write, written = T0, 0
        while True:
            visible = [t for q in self.queues.values() if (t := q.next_visible()) is not None]
            upcoming = [*visible, *([next_write] if next_write <= T0 + self.writes_until else [])]
            if not upcoming:
                return
            self.now = max(self.now, min(upcoming))
            ports.down = {region for region, back in self.outages.items() if self.now < T0 + back}
            if next_write <= self.now and next_write <= T0 + self.writes_until:
                app.put_item({"pk": {"S": f"order-{written}"}, "n": {"N": str(written)}}, keys=("pk",))
                self.mesh.drain()
                for region, write, reason in ports.handed_off:  # what AwsPorts.handoff sends
                    body = {"v": 1, "reason": reason, "handed_off_at": self.now, "write": write.to_json()}
                    self.queues[region].send(json.dumps(body), self.now)
                ports.handed_off.clear()
                written += 1
                next_write += self.write_every
            for region, queue in self.queues.items():
                self._invoke(region, queue)

    def _invoke(self, region: str, queue: FakeQueue) -> None:
        """The SQS event source mapping: batches of 10, failed messages stay, the rest are deleted."""
        while batch := queue.receive(self.now, defaults.DRAIN_BATCH_SIZE):
            for message in batch:
                try:
                    self.drainers[region].replay_message(
                        message.body,
                        message_id=message.id,
                        receipt_handle=message.handle,
                        receive_count=message.receive_count,
                        queue=self,
                    )
                except DrainFailed:
                    continue  # reported in batchItemFailures: the message stays, hidden for its backoff
                queue.delete(message.handle, self.now)


@pytest.fixture
def two_weeks_down() -> Iterator[Simulation]:
    # ap-southeast-2 is unreachable from the first handoff until 30 minutes before the first handed-off
    # write would expire (the longest wait after recovery is one capped delay: 30 minutes);
    # eu-west-1 misses its first ten minutes only. A write every 6 hours for the whole outage.
    outage = RETENTION - HANDOFF_BACKOFF.cap_seconds
    sim = Simulation(outages={AP: outage, EU: 600}, write_every=6 * 3600, writes_until=outage - 1)
    sim.run()
    yield sim
    sim.mesh.__exit__()


def test_a_target_down_for_two_weeks_gets_every_write_and_nothing_reaches_the_dlq(
    two_weeks_down: Simulation, capsys: pytest.CaptureFixture[str]
) -> None:
    sim = two_weeks_down
    ap = sim.queues[AP]
    # Then every write handed off to ap-southeast-2 was replayed once it answered, none expired, none
    # moved to the dead-letter queue, and it holds what the other regions hold
    assert len(ap.done) == 56 and not ap.messages and not ap.expired and not ap.dead_letter_queue
    assert sim.mesh.live_state(AP) == sim.mesh.live_state(US) == sim.mesh.live_state(EU)
    # And each replay came within one capped delay of the recovery
    recovered = T0 + sim.outages[AP]
    waits = [m.replayed_at - recovered for m in ap.done if m.replayed_at is not None]
    assert len(waits) == len(ap.done) and all(0 <= w <= HANDOFF_BACKOFF.cap_seconds for w in waits)
    # And the receives a message cost are bounded by the schedule, far below maxReceiveCount
    receives = [m.receive_count for m in ap.done]
    bound = HANDOFF_BACKOFF.receives_to_span(sim.outages[AP])
    assert max(receives) <= bound < defaults.HANDOFF_MAX_RECEIVE_COUNT
    with capsys.disabled():
        print(
            f"\n[14-day outage] {len(ap.done)} writes; receives per message: max {max(receives)}, "
            f"min {min(receives)} (bound {bound}, maxReceiveCount {defaults.HANDOFF_MAX_RECEIVE_COUNT}); "
            f"longest wait after recovery {max(waits):.0f} s"
        )


def test_another_targets_queue_drains_on_its_own_schedule(two_weeks_down: Simulation) -> None:
    sim = two_weeks_down
    eu = sim.queues[EU]
    # Then eu-west-1's handoffs (its first ten minutes) were replayed right after it came back, while
    # ap-southeast-2 was still down, each within one delay of its own backoff
    assert eu.done and not eu.messages and not eu.dead_letter_queue and not eu.expired
    back = T0 + sim.outages[EU]
    assert all(m.replayed_at is not None and back <= m.replayed_at <= back + 960 for m in eu.done)
    assert max(m.receive_count for m in eu.done) <= HANDOFF_BACKOFF.receives_to_span(600)


def test_without_the_backoff_the_queue_timeout_moves_writes_to_the_dlq_within_days() -> None:
    # Given the drain retrying at the queue's 6-minute timeout, as it did before the backoff
    every_six_minutes = Backoff(base_seconds=VISIBILITY, cap_seconds=VISIBILITY, jitter=0.0)
    outage = 5 * DAY
    sim = Simulation(outages={AP: outage}, write_every=DAY, writes_until=0, backoff=every_six_minutes)
    # When ap-southeast-2 is down for five days
    sim.run()
    # Then the write handed off at the start was in the DLQ before the target came back
    (lost,) = sim.queues[AP].dead_letter_queue
    assert lost.receive_count == defaults.HANDOFF_MAX_RECEIVE_COUNT + 1
    assert not sim.queues[AP].done
    sim.mesh.__exit__()
