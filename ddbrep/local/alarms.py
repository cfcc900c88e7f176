"""The stacks' CloudWatch alarms, evaluated locally: states, transitions, notifications.

The template reader (``templates.AlarmSpec``) keeps only alarms whose every part is implemented here, so
an alarm of a new kind fails ``load_assembly`` instead of never firing. This module holds:

- ``resolve_alarm``: an alarm with its intrinsics resolved (an event source mapping's UUID) and, for
  tests and rehearsals, its period compressed (``RuntimeOptions.alarm_period_seconds``);
- ``datapoints``: one datapoint per period from raw samples, with the alarm's statistic;
- ``evaluate``: the alarm's state from its most recent periods, a pure function;
- ``notification``: the document CloudWatch publishes to the alarm's SNS topics on a state change;
- ``AlarmEvaluator``: the thread that evaluates every alarm periodically, records the transitions and
  writes the notifications (``<log dir>/alarms.jsonl``), and the current states
  (``<log dir>/alarm-states.json``, which ``python -m ddbrep local alarms`` prints).

Evaluation follows CloudWatch's documented rules ("Alarm evaluation" and "Configuring how CloudWatch
alarms treat missing data", https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarm-evaluation.html
and https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html):

- the alarm looks at the last ``EvaluationPeriods`` (N) periods; it goes to ALARM when at least
  ``DatapointsToAlarm`` (M) of them breach the threshold, not necessarily consecutive ("M out of N"),
  and to OK otherwise;
- when no period is missing, missing-data treatment plays no part;
- when some are missing, real datapoints are all used and the missing ones are filled according to
  ``TreatMissingData``: ``notBreaching`` (within the threshold), ``breaching`` (beyond it), ``ignore``
  (the current state is kept unless the real datapoints decide: M of them breach, or one of them is
  within the threshold), ``missing`` (not considered: with every period missing the alarm goes to
  INSUFFICIENT_DATA; with fewer real datapoints than M, ALARM needs all of them to breach).

What the pages state and this follows: M out of N, not necessarily consecutive; the four treatments'
meanings; ``missing`` with every datapoint of the range missing gives INSUFFICIENT_DATA; when data is
missing and fewer real datapoints than N were retrieved, the missing ones are filled as treated, every
real datapoint is used, and missing ones as few times as possible. The ``ignore`` and ``missing``
decisions on a partly missing range (above) are this module's reading of those sentences.
Deviation: CloudWatch's evaluation range reaches a few periods further back than N when data is missing
and uses older real datapoints before filling; locally the range is exactly the N periods. Periods are
aligned on multiples of the period and only complete periods are evaluated.
"""

from __future__ import annotations

import contextlib
import json
import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ddbrep.local.metric_store import Sample, percentile
from ddbrep.local.resilience import ErrorListener, LoopStats, run_forever
from ddbrep.local.templates import AlarmSpec, Resolver

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
NOTIFICATIONS_FILE = "alarms.jsonl"
STATES_FILE = "alarm-states.json"
DEFAULT_EVALUATION_INTERVAL_SECONDS = 60.0  # CloudWatch evaluates an alarm every minute

# The AWS metrics the shipped alarms watch that the stand-ins produce (ddbrep/local/cloud.py).
DISCARDED_TO_DESTINATION = "OnFailureDestinationDeliveredEventCount"
DISCARDED_AND_LOST = "DroppedEventCount"
SQS_VISIBLE = "ApproximateNumberOfMessagesVisible"
SQS_NOT_VISIBLE = "ApproximateNumberOfMessagesNotVisible"
SQS_AGE = "ApproximateAgeOfOldestMessage"  # as SQS reports it (ddbrep/local/engine_server.py)
# each, the queue attribute that tells it (the age has none: the region's engine computes it)
SQS_ATTRIBUTES = {SQS_VISIBLE: "ApproximateNumberOfMessages", SQS_NOT_VISIBLE: SQS_NOT_VISIBLE}

_COMPARISONS: dict[str, tuple[Callable[[float, float], bool], str]] = {
    "GreaterThanThreshold": (lambda v, t: v > t, "greater than"),
    "GreaterThanOrEqualToThreshold": (lambda v, t: v >= t, "greater than or equal to"),
    "LessThanThreshold": (lambda v, t: v < t, "less than"),
    "LessThanOrEqualToThreshold": (lambda v, t: v <= t, "less than or equal to"),
}
# The long names CloudWatch writes in a notification's "Region" (the regions the docs and tests use).
REGION_NAMES = {
    "us-east-1": "US East (N. Virginia)",
    "us-east-2": "US East (Ohio)",
    "us-west-2": "US West (Oregon)",
    "eu-west-1": "EU (Ireland)",
    "eu-central-1": "EU (Frankfurt)",
    "ap-southeast-2": "Asia Pacific (Sydney)",
    "ap-northeast-1": "Asia Pacific (Tokyo)",
}


@dataclass(frozen=True)
class MetricQuery:
    """What an alarm asks CloudWatch for: one statistic of one metric of one region, per period."""

    region: str
    namespace: str
    metric_name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted by name
    stat: str
    period: float  # seconds

    def describe(self) -> str:
        dims = ",".join(f"{k}={v}" for k, v in self.dimensions)
        return f"{self.namespace} {self.metric_name}{{{dims}}} {self.stat}/{self.period:g}s ({self.region})"


@dataclass(frozen=True)
class Alarm:
    """An alarm of a stack, resolved for the local regions."""

    name: str
    region: str
    account: str
    description: str
    query: MetricQuery
    metric_id: str
    threshold: float
    comparison_operator: str
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing_data: str
    actions_enabled: bool = True
    alarm_actions: tuple[str, ...] = ()
    ok_actions: tuple[str, ...] = ()

    @property
    def arn(self) -> str:
        return f"arn:aws:cloudwatch:{self.region}:{self.account}:alarm:{self.name}"


@dataclass(frozen=True)
class Datapoint:
    at: float  # start of the period, epoch seconds
    value: float


@dataclass(frozen=True)
class Evaluation:
    state: str
    reason: str
    # the N periods evaluated, oldest first: the datapoint, or None for a missing one
    periods: tuple[Datapoint | None, ...] = ()


Fetch = Callable[[MetricQuery, float, float], Sequence[Datapoint]]


def resolve_alarm(
    spec: AlarmSpec, region: str, account: str, resolver: Resolver, period_seconds: float | None = None
) -> Alarm:
    """``spec`` with its intrinsics resolved; ``period_seconds`` replaces its metric's period."""
    metric = spec.metric
    dimensions = tuple(sorted((name, str(resolver.resolve(value))) for name, value in metric.dimensions))
    return Alarm(
        name=spec.name,
        region=region,
        account=account,
        description=spec.description,
        query=MetricQuery(
            region=region,
            namespace=metric.namespace,
            metric_name=metric.metric_name,
            dimensions=dimensions,
            stat=metric.stat,
            period=float(period_seconds if period_seconds is not None else metric.period),
        ),
        metric_id=metric.id,
        threshold=spec.threshold,
        comparison_operator=spec.comparison_operator,
        evaluation_periods=spec.evaluation_periods,
        datapoints_to_alarm=spec.datapoints_to_alarm,
        treat_missing_data=spec.treat_missing_data,
        actions_enabled=spec.actions_enabled,
        alarm_actions=tuple(str(resolver.resolve(a)) for a in spec.alarm_actions),
        ok_actions=tuple(str(resolver.resolve(a)) for a in spec.ok_actions),
    )


# --- datapoints -----------------------------------------------------------------------------------------


def statistic(values: Sequence[float], stat: str) -> float:
    """CloudWatch's statistic of a period's values (pNN: nearest rank)."""
    if not values:
        return math.nan
    if stat == "Sum":
        return float(sum(values))
    if stat == "Maximum":
        return float(max(values))
    if stat == "Minimum":
        return float(min(values))
    if stat == "Average":
        return float(sum(values) / len(values))
    if stat == "SampleCount":
        return float(len(values))
    if stat.startswith("p"):
        return percentile(values, float(stat[1:]))
    raise ValueError(f"statistic {stat!r} is not evaluated locally")


def datapoints(
    samples: Iterable[tuple[float, float]], stat: str, period: float, start: float, end: float
) -> list[Datapoint]:
    """One datapoint per period in [start, end) holding samples ``(time, value)``; periods are aligned on
    multiples of ``period`` (epoch seconds), as CloudWatch aligns them."""
    buckets: dict[int, list[float]] = defaultdict(list)
    for at, value in samples:
        if start <= at < end:
            buckets[math.floor(at / period)].append(value)
    return [Datapoint(index * period, statistic(buckets[index], stat)) for index in sorted(buckets)]


def matches(sample: Sample, query: MetricQuery, local_dimensions: Mapping[str, str] | None = None) -> bool:
    """Whether ``sample`` is a value of the queried metric: same region, namespace and name, and exactly
    the queried dimensions (CloudWatch treats every dimension combination as its own metric).
    ``local_dimensions`` are dimensions the runtime adds to its own samples and CloudWatch does not have
    (the ``Region`` of the Lambda metrics the stand-ins record), ignored when they hold these values."""
    if (sample.region, sample.namespace, sample.name) != (query.region, query.namespace, query.metric_name):
        return False
    extra = local_dimensions or {}
    dimensions = tuple((k, v) for k, v in sample.dimensions if extra.get(k) != v)
    return dimensions == query.dimensions


# --- evaluating -----------------------------------------------------------------------------------------


def breaches(alarm: Alarm, value: float) -> bool:
    compare, _words = _COMPARISONS[alarm.comparison_operator]
    return compare(value, alarm.threshold)


def evaluation_window(alarm: Alarm, now: float) -> tuple[float, float]:
    """[start, end) of the N most recent complete periods at ``now``."""
    period = alarm.query.period
    end = math.floor(now / period) * period
    return end - alarm.evaluation_periods * period, end


def evaluate(alarm: Alarm, fetch: Fetch, now: float, current: str = INSUFFICIENT_DATA) -> Evaluation:
    """The alarm's state at ``now`` from its last N complete periods (rules: the module's docstring)."""
    start, end = evaluation_window(alarm, now)
    period = alarm.query.period
    found = {round((p.at - start) / period): p for p in fetch(alarm.query, start, end)}
    periods = tuple(found.get(i) for i in range(alarm.evaluation_periods))
    return decide(alarm, periods, current)


def decide(alarm: Alarm, periods: Sequence[Datapoint | None], current: str) -> Evaluation:
    """The state for the N evaluated periods (None: missing), given the current state."""
    m = alarm.datapoints_to_alarm
    real = [p for p in periods if p is not None]
    breaching = [p for p in real if breaches(alarm, p.value)]
    missing = len(periods) - len(real)
    treat = alarm.treat_missing_data
    state: str | None
    if not missing or treat == "notBreaching":
        state = ALARM if len(breaching) >= m else OK
    elif treat == "breaching":
        state = ALARM if len(breaching) + missing >= m else OK
    elif treat == "missing":
        # not considered: ALARM needs M breaching, or all the real ones when fewer than M are there
        state = ALARM if len(breaching) >= min(m, len(real)) else OK
        if not real:
            state = INSUFFICIENT_DATA
    elif treat == "ignore":
        if len(breaching) >= m:
            state = ALARM
        elif len(breaching) < len(real):  # a real datapoint within the threshold
            state = OK
        else:  # nothing but missing, or too few breaching datapoints to decide: keep the state
            state = None
    else:
        raise ValueError(f"alarm {alarm.name}: TreatMissingData {treat!r}")
    kept = state is None
    new_state = current if state is None else state
    return Evaluation(new_state, _reason(alarm, periods, breaching, new_state, kept), tuple(periods))


def _reason(
    alarm: Alarm, periods: Sequence[Datapoint | None], breaching: Sequence[Datapoint], state: str, kept: bool
) -> str:
    """Why, worded as CloudWatch's StateReason ("Threshold Crossed: 1 out of the last 1 datapoints...")."""
    real = [p for p in periods if p is not None]
    missing = len(periods) - len(real)
    treat = alarm.treat_missing_data
    if not real:
        if kept:
            return f"no datapoints in the last {len(periods)} period(s): state kept (missing data ignored)"
        if treat in ("notBreaching", "breaching"):
            return f"no datapoints in the last {len(periods)} period(s), treated as {treat}"
        return f"Insufficient Data: no datapoints were received for the last {len(periods)} period(s)"
    _compare, words = _COMPARISONS[alarm.comparison_operator]
    shown = ", ".join(
        f"{p.value:g} ({time.strftime('%d/%m/%y %H:%M:%S', time.gmtime(p.at))})" for p in reversed(real)
    )
    if state == ALARM:
        count = len(breaching) + (missing if treat == "breaching" else 0)
        relation = words
    else:
        count = len(real) - len(breaching) + (missing if treat == "notBreaching" else 0)
        relation = f"not {words}"
    verb = "was" if count == 1 else "were"
    text = (
        f"Threshold Crossed: {count} out of the last {len(periods)} datapoints [{shown}] {verb} {relation} "
        f"the threshold ({alarm.threshold:g}) (minimum {alarm.datapoints_to_alarm} datapoint(s) for "
        "OK -> ALARM transition)."
    )
    if missing:
        text += f" {missing} missing datapoint(s) treated as {treat}."
    if kept:
        text += " State kept."
    return text


def notifies(old: str, new: str) -> bool:
    """Whether the transition writes a notification: into ALARM, or from ALARM back to OK."""
    return old != new and (new == ALARM or (new == OK and old == ALARM))


def notification(alarm: Alarm, old: str, evaluation: Evaluation, at: float) -> dict[str, Any]:
    """The message CloudWatch publishes to an alarm's SNS topic on a state change (its JSON shape)."""
    query = alarm.query
    return {
        "AlarmName": alarm.name,
        "AlarmDescription": alarm.description,
        "AWSAccountId": alarm.account,
        "AlarmConfigurationUpdatedTimestamp": None,
        "NewStateValue": evaluation.state,
        "NewStateReason": evaluation.reason,
        "StateChangeTime": _iso(at),
        "Region": REGION_NAMES.get(alarm.region, alarm.region),
        "AlarmArn": alarm.arn,
        "OldStateValue": old,
        "OKActions": list(alarm.ok_actions),
        "AlarmActions": list(alarm.alarm_actions),
        "InsufficientDataActions": [],
        "Trigger": {
            "Period": query.period,
            "EvaluationPeriods": alarm.evaluation_periods,
            "DatapointsToAlarm": alarm.datapoints_to_alarm,
            "ComparisonOperator": alarm.comparison_operator,
            "Threshold": alarm.threshold,
            "TreatMissingData": alarm.treat_missing_data,
            "EvaluateLowSampleCountPercentile": "",
            "Metrics": [
                {
                    "Id": alarm.metric_id,
                    "MetricStat": {
                        "Metric": {
                            "Dimensions": [{"name": k, "value": v} for k, v in query.dimensions],
                            "MetricName": query.metric_name,
                            "Namespace": query.namespace,
                        },
                        "Period": query.period,
                        "Stat": query.stat,
                    },
                    "ReturnData": True,
                }
            ],
        },
    }


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}+0000"


# --- the evaluator thread -------------------------------------------------------------------------------


@dataclass
class AlarmState:
    alarm: Alarm
    state: str = INSUFFICIENT_DATA
    reason: str = "Unchecked: Initial alarm creation"
    changed_at: float = field(default_factory=time.time)


Publish = Callable[[Alarm, dict[str, Any]], None]


class AlarmEvaluator:
    """Evaluates every alarm every ``interval`` seconds (``run_forever``); on each transition into ALARM
    or back to OK appends the notification to ``<log dir>/alarms.jsonl`` and hands it to ``publish``
    (SNS, when the alarm's topic exists). ``before`` runs first each round (sampling queue attributes)."""

    def __init__(
        self,
        alarms: Sequence[Alarm],
        fetch: Fetch,
        *,
        interval: float,
        log_dir: Path | None = None,
        publish: Publish | None = None,
        before: Callable[[], None] | None = None,
        on_error: ErrorListener | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.fetch, self.interval, self.log_dir = fetch, interval, log_dir
        self.publish, self.before, self.on_error, self.clock = publish, before, on_error, clock
        self.stats = LoopStats()
        self.notifications: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._states: dict[str, AlarmState] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.set_alarms(alarms)

    def set_alarms(self, alarms: Sequence[Alarm]) -> None:
        """Evaluate ``alarms`` from now on (a deploy adds some); known alarms keep their state."""
        with self._lock:
            known = self._states
            self._states = {
                alarm.arn: (
                    replace(known[alarm.arn], alarm=alarm) if alarm.arn in known else AlarmState(alarm)
                )
                for alarm in alarms
            }

    def states(self) -> dict[str, AlarmState]:
        with self._lock:
            return dict(self._states)

    def evaluate_all(self) -> list[dict[str, Any]]:
        """One round over every alarm; the notifications it wrote."""
        if self.before is not None:
            self.before()
        now = self.clock()
        written = []
        for arn, current in self.states().items():
            evaluation = evaluate(current.alarm, self.fetch, now, current.state)
            old = current.state
            with self._lock:
                if arn not in self._states:
                    continue
                self._states[arn] = AlarmState(
                    current.alarm,
                    evaluation.state,
                    evaluation.reason,
                    now if evaluation.state != old else current.changed_at,
                )
            if notifies(old, evaluation.state):
                document = notification(current.alarm, old, evaluation, now)
                written.append(document)
                self._record(current.alarm, document)
        self._write_states()
        return written

    def _record(self, alarm: Alarm, document: dict[str, Any]) -> None:
        with self._lock:
            self.notifications.append(document)
        if self.log_dir is not None:
            with open(self.log_dir / NOTIFICATIONS_FILE, "a") as log:
                log.write(json.dumps(document, sort_keys=True) + "\n")
        if self.publish is not None and alarm.actions_enabled:
            self.publish(alarm, document)

    def _write_states(self) -> None:
        if self.log_dir is None:
            return
        document = {
            arn: {
                "AlarmName": s.alarm.name,
                "Region": s.alarm.region,
                "StateValue": s.state,
                "StateReason": s.reason,
                "StateUpdatedTimestamp": _iso(s.changed_at),
                "Metric": s.alarm.query.describe(),
            }
            for arn, s in sorted(self.states().items())
        }
        path = self.log_dir / STATES_FILE
        staging = path.with_suffix(".tmp")
        staging.write_text(json.dumps(document, indent=2, sort_keys=True))
        staging.replace(path)

    def start(self) -> AlarmEvaluator:
        self._thread = threading.Thread(target=self._run, name="alarm-evaluator", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        def round_then_wait() -> bool:
            self.evaluate_all()
            return False

        run_forever(
            "alarm evaluator",
            round_then_wait,
            self._stop,
            interval=self.interval,
            stats=self.stats,
            on_error=self.on_error,
            expected=(OSError,),
        )

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            with contextlib.suppress(RuntimeError):
                self._thread.join(timeout=10)


def read_states(log_dir: Path) -> dict[str, dict[str, Any]]:
    """The states a running ``local up`` wrote; FileNotFoundError saying why there are none."""
    path = log_dir / STATES_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: is {log_dir} the --log-dir of a running `local up`?")
    states: dict[str, dict[str, Any]] = json.loads(path.read_text())
    return states


def read_notifications(log_dir: Path) -> list[dict[str, Any]]:
    """Every notification written under ``log_dir`` (oldest first); [] when none was."""
    path = log_dir / NOTIFICATIONS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
