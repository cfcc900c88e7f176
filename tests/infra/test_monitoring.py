"""One dashboard for the deployment, alarms per source region; names exactly those the function emits."""

from __future__ import annotations

import json
from typing import Any

import pytest

from replicator.core import metrics_names as names
from stacks import defaults
from stacks.monitoring import DISCARDED_AND_LOST, DISCARDED_TO_DESTINATION
from tests.infra.conftest import TOPIC_EU, Synthesized
from tests.infra.templates import render

pytestmark = pytest.mark.infra

REGIONS = ("us-east-1", "eu-west-1", "ap-southeast-2")


def alarms(synth: Synthesized, region: str) -> dict[str, dict[str, Any]]:
    return {
        a["Properties"]["AlarmName"]: a["Properties"]
        for a in synth.resources(region, "AWS::CloudWatch::Alarm").values()
    }


def metric_of(alarm: dict[str, Any]) -> dict[str, Any]:
    (query,) = alarm["Metrics"]
    stat = query["MetricStat"]
    metric = stat["Metric"]
    return {
        "namespace": metric["Namespace"],
        "name": metric["MetricName"],
        "dimensions": {d["Name"]: d["Value"] for d in metric["Dimensions"]},
        "stat": stat["Stat"],
    }


def dashboard_metrics(synth: Synthesized, region: str) -> list[list[Any]]:
    (dashboard,) = synth.resources(region, "AWS::CloudWatch::Dashboard").values()
    body = json.loads(render(dashboard["Properties"]["DashboardBody"]))
    every = [m for w in body["widgets"] if w["type"] == "metric" for m in w["properties"].get("metrics", [])]
    return [m for m in every if isinstance(m[0], str)]  # named metrics, not math expressions


def test_exactly_one_dashboard_in_the_dashboard_region(mesh3: Synthesized) -> None:
    counts = {r: len(mesh3.resources(r, "AWS::CloudWatch::Dashboard")) for r in REGIONS}
    assert counts == {"us-east-1": 1, "eu-west-1": 0, "ap-southeast-2": 0}
    (dashboard,) = mesh3.resources("us-east-1", "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "orders-replication"


def test_dashboard_shows_latency_percentiles_for_every_pair(mesh3: Synthesized) -> None:
    shown = {
        (m[3], m[5], m[-1]["stat"], m[-1]["region"])
        for m in dashboard_metrics(mesh3, "us-east-1")
        if m[:2] == [defaults.METRICS_NAMESPACE, names.REPLICATION_LATENCY]
    }
    expected = {
        (source, target, stat, source)
        for source in REGIONS
        for target in REGIONS
        if source != target
        for stat in ("p50", "p90", "p99", "SampleCount")
    }
    assert shown == expected


def test_dashboard_shows_the_writes_applied_to_every_pair_as_the_latency_sample_count(
    mesh3: Synthesized,
) -> None:
    # Given the mesh's dashboard (RecordsReplicated is not emitted: replicator/core/metrics_names.py)
    shown = dashboard_metrics(mesh3, "us-east-1")
    applied = {
        (m[3], m[5], m[-1]["region"])
        for m in shown
        if m[:2] == [defaults.METRICS_NAMESPACE, names.REPLICATION_LATENCY] and m[-1]["stat"] == "SampleCount"
    }
    # Then one graph has a line per ordered pair, read in the source region, and none reads the count
    assert applied == {(s, t, s) for s in REGIONS for t in REGIONS if s != t}
    assert not [m for m in shown if m[1] == names.RECORDS_REPLICATED]


def test_dashboard_shows_conflicts_lost_and_not_logged_for_every_pair(mesh3: Synthesized) -> None:
    # Given the mesh's dashboard; Then one graph per conflict metric has a line for every ordered pair
    for metric_name in (names.CONFLICTS_LOST, names.CONFLICTS_NOT_LOGGED):
        shown = {
            (m[3], m[5], m[-1]["stat"])
            for m in dashboard_metrics(mesh3, "us-east-1")
            if m[:2] == [defaults.METRICS_NAMESPACE, metric_name]
        }
        assert shown == {(s, t, "Sum") for s in REGIONS for t in REGIONS if s != t}, metric_name


def test_dashboard_uses_the_emitted_names_and_dimensions(mesh3: Synthesized) -> None:
    custom = [m for m in dashboard_metrics(mesh3, "us-east-1") if m[0] == defaults.METRICS_NAMESPACE]
    pair_metrics = {m[1] for m in custom if m[2:6:2] == [names.SOURCE_REGION, names.TARGET_REGION]}
    source_metrics = {m[1] for m in custom if len(m) == 5 and m[2] == names.SOURCE_REGION}
    assert pair_metrics == set(names.PAIR_METRICS)
    assert source_metrics == set(names.SOURCE_METRICS)
    assert all(m[1] in names.PAIR_METRICS + names.SOURCE_METRICS for m in custom)


def test_dashboard_shows_every_function_and_handoff_queue_of_every_region(mesh3: Synthesized) -> None:
    shown = dashboard_metrics(mesh3, "us-east-1")
    functions = {(m[3], m[-1]["region"]) for m in shown if m[0] == "AWS/Lambda" and m[2] == "FunctionName"}
    queues = {(m[3], m[-1]["region"]) for m in shown if m[0] == "AWS/SQS"}
    metrics = {m[1] for m in shown if m[0] == "AWS/Lambda"}
    assert {"Errors", "Throttles", "IteratorAge"} <= metrics
    assert {"ApproximateNumberOfMessagesVisible", "ApproximateAgeOfOldestMessage"} <= {
        m[1] for m in shown if m[0] == "AWS/SQS"
    }
    for source in REGIONS:
        assert ("orders-replicator", source) in functions
        for target in (r for r in REGIONS if r != source):
            assert (f"orders-drain-{target}", source) in functions
            assert (f"orders-handoff-{target}", source) in queues
            assert (f"orders-handoff-{target}-dlq", source) in queues


@pytest.mark.parametrize("region", REGIONS)
def test_every_source_region_has_its_alarms_with_default_thresholds(mesh3: Synthesized, region: str) -> None:
    found = {
        name.removeprefix(f"orders-replication-{region}-"): a for name, a in alarms(mesh3, region).items()
    }
    assert (
        found["replicator-Iterator-Age-Max-Critical"]["Threshold"]
        == defaults.ITERATOR_AGE_ALARM_SECONDS * 1000
    )
    assert found["replicator-Fault-Count-Critical"]["Threshold"] == defaults.FUNCTION_ERRORS_ALARM_MAX
    for target in (r for r in REGIONS if r != region):
        pair = f"{region}-to-{target}"
        latency = found[f"pairs-latency-p99-{pair}-Critical"]
        assert latency["Threshold"] == defaults.LATENCY_P99_ALARM_MS
        assert metric_of(latency) == {
            "namespace": defaults.METRICS_NAMESPACE,
            "name": names.REPLICATION_LATENCY,
            "dimensions": {names.SOURCE_REGION: region, names.TARGET_REGION: target},
            "stat": "p99",
        }
        dead = found[f"pairs-dead-letters-{pair}-Critical"]
        assert metric_of(dead)["name"] == names.DEAD_LETTERED
        assert (dead["Threshold"], dead["EvaluationPeriods"]) == (0, 1)
        stalled = found[f"pairs-handoff-failed-{pair}-Critical"]
        assert metric_of(stalled)["name"] == names.HANDOFF_FAILED
        assert (stalled["Threshold"], stalled["EvaluationPeriods"]) == (0, 1)
        age = found[f"handoff-{target}-Queue-Message-Age-Max-Critical"]
        assert age["Threshold"] == defaults.HANDOFF_AGE_ALARM_SECONDS
        assert metric_of(age)["dimensions"] == {"QueueName": f"orders-handoff-{target}"}
        waiting = found[f"handoffs-handoff-waiting-{pair}-Critical"]
        assert metric_of(waiting) == {
            "namespace": "AWS/SQS",
            "name": "ApproximateNumberOfMessagesNotVisible",
            "dimensions": {"QueueName": f"orders-handoff-{target}"},
            "stat": "Minimum",
        }
        assert (waiting["Threshold"], waiting["EvaluationPeriods"], waiting["DatapointsToAlarm"]) == (0, 4, 3)
        assert waiting["TreatMissingData"] == "notBreaching"
        dlq = found[f"handoff-{target}-DLQ-Queue-Message-Count-Max-Critical"]
        assert metric_of(dlq)["dimensions"] == {"QueueName": f"orders-handoff-{target}-dlq"}
        assert (
            found[f"drain-{target}-Fault-Count-Critical"]["Threshold"] == defaults.FUNCTION_ERRORS_ALARM_MAX
        )
    # Dead letters of the region's own records (malformed, rejected locally): source dimension only
    own = found[f"pairs-dead-letters-{region}-Critical"]
    assert metric_of(own)["name"] == names.DEAD_LETTERED
    assert metric_of(own)["dimensions"] == {names.SOURCE_REGION: region}
    # Writes stamped in the future by this region's writers (their clock runs ahead)
    future = found[f"pairs-future-versions-{region}-Critical"]
    assert metric_of(future) == {
        "namespace": defaults.METRICS_NAMESPACE,
        "name": names.FUTURE_VERSIONS_REJECTED,
        "dimensions": {names.SOURCE_REGION: region},
        "stat": "Sum",
    }
    assert (future["Threshold"], future["EvaluationPeriods"], future["DatapointsToAlarm"]) == (0, 1, 1)
    assert future["ComparisonOperator"] == "GreaterThanThreshold"
    assert future["TreatMissingData"] == "notBreaching"
    assert len(found) == 6 + 7 * (len(REGIONS) - 1)


def stream_mapping_id(synth: Synthesized, region: str) -> str:
    """The logical id of the region's one DynamoDB stream mapping (the others read handoff queues)."""
    (logical_id,) = (
        logical_id
        for logical_id, mapping in synth.resources(region, "AWS::Lambda::EventSourceMapping").items()
        if "StartingPosition" in mapping["Properties"]
    )
    return logical_id


@pytest.mark.parametrize("region", REGIONS)
def test_a_discarded_batch_alarms_on_the_source_tables_mapping(mesh3: Synthesized, region: str) -> None:
    # Given the source table's one event source mapping, with its own event-count metrics turned on
    mapping = stream_mapping_id(mesh3, region)
    properties = mesh3.template(region)["Resources"][mapping]["Properties"]
    assert properties["MetricsConfig"] == {"Metrics": ["EventCount"]}
    found = alarms(mesh3, region)
    prefix = f"orders-replication-{region}-pairs-"
    # Then any record Lambda gave up on and described in the bucket alarms at once
    # And so does any record it gave up on without a description (delivery to the bucket failed)
    for name, metric_name in (
        (f"{prefix}discarded-batches-{region}-Critical", DISCARDED_TO_DESTINATION),
        (f"{prefix}dropped-records-{region}-Critical", DISCARDED_AND_LOST),
    ):
        alarm = found[name]
        assert alarm["Metrics"] == [
            {
                "Id": "m1",
                "Label": f"{region} stream records {metric_name}",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "AWS/Lambda",
                        "MetricName": metric_name,
                        "Dimensions": [{"Name": "EventSourceMappingUUID", "Value": {"Ref": mapping}}],
                    },
                    "Period": defaults.ALARM_PERIOD_MINUTES * 60,
                    "Stat": "Sum",
                },
                "ReturnData": True,
            }
        ]
        assert (alarm["Threshold"], alarm["EvaluationPeriods"], alarm["DatapointsToAlarm"]) == (0, 1, 1)
        assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
        assert alarm["TreatMissingData"] == "notBreaching"
    assert "ddbrep redrive" in found[f"{prefix}discarded-batches-{region}-Critical"]["AlarmDescription"]
    assert "verify --repair" in found[f"{prefix}dropped-records-{region}-Critical"]["AlarmDescription"]


def test_dashboard_shows_future_versions_rejected_for_every_source_region(mesh3: Synthesized) -> None:
    (dashboard,) = mesh3.resources("us-east-1", "AWS::CloudWatch::Dashboard").values()
    body = json.loads(render(dashboard["Properties"]["DashboardBody"]))
    shown = {
        (w["properties"]["title"], m[2], m[3], m[-1]["region"])
        for w in body["widgets"]
        if w["type"] == "metric"
        for m in w["properties"].get("metrics", [])
        if isinstance(m[0], str) and m[1] == names.FUTURE_VERSIONS_REJECTED
    }
    assert shown == {(f"{r}: {names.FUTURE_VERSIONS_REJECTED}", names.SOURCE_REGION, r, r) for r in REGIONS}


def test_without_notifications_alarms_have_no_actions_and_no_topic(mesh3: Synthesized) -> None:
    for region in REGIONS:
        assert not mesh3.resources(region, "AWS::SNS::Topic")
        assert all(not a.get("AlarmActions") for a in alarms(mesh3, region).values())


def test_cloudwatch_may_publish_to_the_alarm_topic_for_this_stacks_alarms_only(mesh2: Synthesized) -> None:
    # Given the topic created for the e-mail subscription (a topic policy replaces SNS's default one)
    ((topic_id, _topic),) = mesh2.resources("us-west-2", "AWS::SNS::Topic").items()
    (policy,) = mesh2.resources("us-west-2", "AWS::SNS::TopicPolicy").values()
    assert policy["Properties"]["Topics"] == [{"Ref": topic_id}]
    statements = render(policy["Properties"]["PolicyDocument"]["Statement"])
    # Then it keeps the TLS deny and allows CloudWatch to publish, only for this stack's alarms
    assert statements == [
        {
            "Action": "sns:Publish",
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            "Effect": "Deny",
            "Principal": "*",
            "Resource": f"<{topic_id}>",
            "Sid": "AllowPublishThroughSSLOnly",
        },
        {
            "Action": "sns:Publish",
            "Condition": {
                "ArnLike": {
                    "aws:SourceArn": "arn:aws:cloudwatch:us-west-2:222222222222:alarm:"
                    "orders_usw2-replication-us-west-2-*"
                },
                "StringEquals": {"aws:SourceAccount": "222222222222"},
            },
            "Effect": "Allow",
            "Principal": {"Service": "cloudwatch.amazonaws.com"},
            "Resource": f"<{topic_id}>",
            "Sid": "CloudWatchAlarmsOfThisStackPublish",
        },
    ]
    # And every alarm of the stack is one the statement covers
    assert all(name.startswith("orders_usw2-replication-us-west-2-") for name in alarms(mesh2, "us-west-2"))
    # And an imported topic gets no policy from this stack (its owner must allow CloudWatch)
    assert not mesh2.resources("eu-west-1", "AWS::SNS::TopicPolicy")


def test_alarms_notify_an_email_topic_or_the_given_topic(mesh2: Synthesized) -> None:
    # us-west-2: a topic created with the e-mail subscription; eu-west-1: the existing topic given.
    ((topic_id, topic),) = mesh2.resources("us-west-2", "AWS::SNS::Topic").items()
    assert topic["Properties"]["TopicName"] == "orders_usw2-replication-alarms"
    (subscription,) = mesh2.resources("us-west-2", "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Protocol"] == "email"
    assert subscription["Properties"]["Endpoint"] == "ops@example.com"
    assert all(a["AlarmActions"] == [{"Ref": topic_id}] for a in alarms(mesh2, "us-west-2").values())
    assert not mesh2.resources("eu-west-1", "AWS::SNS::Topic")
    assert all(a["AlarmActions"] == [TOPIC_EU] for a in alarms(mesh2, "eu-west-1").values())


def test_alarm_thresholds_follow_the_context(mesh2: Synthesized) -> None:
    found = alarms(mesh2, "us-west-2")
    prefix = "orders_usw2-replication-us-west-2-"
    assert found[f"{prefix}replicator-Iterator-Age-Max-Critical"]["Threshold"] == 120_000
    assert found[f"{prefix}replicator-Fault-Count-Critical"]["Threshold"] == 3
    assert found[f"{prefix}pairs-latency-p99-us-west-2-to-eu-west-1-Critical"]["Threshold"] == 5000
    assert found[f"{prefix}handoff-eu-west-1-Queue-Message-Age-Max-Critical"]["Threshold"] == 600
    latency = metric_of(found[f"{prefix}pairs-latency-p99-us-west-2-to-eu-west-1-Critical"])
    assert latency["namespace"] == "Orders/Replication"


def test_dashboard_region_and_namespace_follow_the_context(mesh2: Synthesized) -> None:
    assert not mesh2.resources("us-west-2", "AWS::CloudWatch::Dashboard")
    (dashboard,) = mesh2.resources("eu-west-1", "AWS::CloudWatch::Dashboard").values()
    assert dashboard["Properties"]["DashboardName"] == "orders-euw1-replication"
    namespaces = {m[0] for m in dashboard_metrics(mesh2, "eu-west-1")}
    assert "Orders/Replication" in namespaces
    assert defaults.METRICS_NAMESPACE not in namespaces
