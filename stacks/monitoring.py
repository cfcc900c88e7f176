"""Dashboard and alarms, built with cdk-monitoring-constructs where it does the job.

CloudWatch alarms only watch metrics of their own region and notify topics of their own region, so every
source region gets its own alarms (:class:`RegionAlarms`). Dashboards are global and can show any region,
so the deployment has ONE dashboard (:class:`ReplicationDashboard`) in ``dashboard_region``, showing every
region's metrics by name: functions and queues are referenced by their literal physical names, never by a
cross-region reference. Metric names and dimensions come from ``replicator.core.metrics_names``, the module
the function emits with, so the two cannot drift.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from aws_cdk import Aws, Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from cdk_monitoring_constructs import (
    AlarmFactoryDefaults,
    CustomMetricGroup,
    CustomMetricWithAlarm,
    CustomThreshold,
    DefaultDashboardFactory,
    ErrorCountThreshold,
    MaxAgeThreshold,
    MaxMessageAgeThreshold,
    MaxMessageCountThreshold,
    MonitoringFacade,
    SnsAlarmActionStrategy,
)
from constructs import Construct

from replicator.core import metrics_names as names
from stacks import defaults
from stacks.config import RegionPlan, ReplicationConfig, TargetPlan

PERIOD = Duration.minutes(defaults.ALARM_PERIOD_MINUTES)

# Per pair, every other metric the function emits is a count (Sum per period): derived from the emitted
# names, so a metric added to the function appears on the dashboard without a change here.
PAIR_COUNTS = tuple(m for m in names.PAIR_METRICS if m != names.REPLICATION_LATENCY)
LATENCY_STATISTICS = ("p50", "p90", "p99")
# The writes applied to each target (replicator and drain) per period: ReplicationLatency carries one
# value per applied write, so its SampleCount is that throughput, and RecordsReplicated (the same
# number less HandoffReplayed) is not emitted, saving a metric billed every hour for every pair.
APPLIED_STATISTIC = "SampleCount"

# Lambda's event source mapping metrics (namespace AWS/Lambda, dimension EventSourceMappingUUID), emitted
# only when the mapping's MetricsConfig includes EventCount (stacks/replicator.py turns it on). From
# https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html#event-source-mapping-metrics
# (both "Yes" for Kinesis and DynamoDB streams):
# - OnFailureDestinationDeliveredEventCount: records of batches Lambda gave up on (retries exhausted,
#   record age exceeded) whose description reached the on-failure destination (the dead-letter bucket,
#   under aws/lambda/). Exactly "a batch was discarded": the records were never applied, and
#   `ddbrep redrive` can recover them from the stream while it retains them.
# - DroppedEventCount: records discarded that way WITHOUT a description in the bucket (the delivery
#   failed; Lambda then also emits DestinationDeliveryFailures). Nothing points redrive at them: only
#   `verify --repair` finds what they changed.
# Chosen over S3 request metrics on the prefix (a paid, best-effort filter on the bucket, counting puts,
# not records) and over an S3 event notification (another topic and policy, and no CloudWatch alarm
# state): the mapping's own count says how many records were given up on, per source table.
ESM_NAMESPACE = "AWS/Lambda"
ESM_DIMENSION = "EventSourceMappingUUID"
DISCARDED_TO_DESTINATION = "OnFailureDestinationDeliveredEventCount"
DISCARDED_AND_LOST = "DroppedEventCount"


@dataclass(frozen=True)
class ReplicationMetrics:
    """Metric definitions (apart from widgets and alarms): the names the function emits, per region."""

    namespace: str
    account: str

    def pair(self, metric_name: str, target: TargetPlan, statistic: str = "Sum") -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=metric_name,
            dimensions_map={names.SOURCE_REGION: target.source_region, names.TARGET_REGION: target.region},
            statistic=statistic,
            period=PERIOD,
            region=target.source_region,  # emitted by the source region's functions
            account=self.account,
            label=f"{target.source_region}->{target.region} {metric_name} {statistic}",
        )

    def source(self, metric_name: str, region: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=self.namespace,
            metric_name=metric_name,
            dimensions_map={names.SOURCE_REGION: region},
            statistic="Sum",
            period=PERIOD,
            region=region,
            account=self.account,
            label=f"{region} {metric_name}",
        )


def _function_ref(scope: Construct, construct_id: str, plan: RegionPlan, name: str) -> lambda_.IFunction:
    arn = f"arn:aws:lambda:{plan.region}:{plan.account}:function:{name}"
    return lambda_.Function.from_function_attributes(
        scope, construct_id, function_arn=arn, same_environment=False
    )


def _queue_ref(scope: Construct, construct_id: str, plan: RegionPlan, name: str) -> sqs.IQueue:
    return sqs.Queue.from_queue_arn(scope, construct_id, f"arn:aws:sqs:{plan.region}:{plan.account}:{name}")


class RegionAlarms(Construct):
    """The alarms of one source region, wired to the region's notification topic (if any)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: ReplicationConfig,
        plan: RegionPlan,
        stream_mapping_id: str,
        topic: sns.ITopic | None = None,
        publishing_prefixes: Sequence[str] = (),
    ) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.plan = plan
        self.stream_mapping_id = stream_mapping_id  # the UUID of the source table's one mapping
        # The alarm name prefixes of every table's alarms in this region, all notifying one topic.
        self.publishing_prefixes = tuple(publishing_prefixes) or (plan.alarm_prefix,)
        # The region's topic, built by its first table's alarms and shared by the others.
        self.topic = topic if topic is not None else self._build_topic()
        self.facade = MonitoringFacade(
            self,
            "Facade",
            alarm_factory_defaults=AlarmFactoryDefaults(
                alarm_name_prefix=plan.alarm_prefix,
                actions_enabled=True,
                action=SnsAlarmActionStrategy(on_alarm_topic=self.topic) if self.topic else None,
                # Two of three periods: one slow poll does not page anyone.
                evaluation_periods=3,
                datapoints_to_alarm=2,
            ),
            # Alarms only: the deployment's single dashboard lives in ReplicationDashboard.
            dashboard_factory=DefaultDashboardFactory(
                self,
                "NoDashboard",
                dashboard_name_prefix=plan.replicator_function_name,
                create_dashboard=False,
                create_summary_dashboard=False,
                create_alarm_dashboard=False,
            ),
        )
        self._build_function_alarms()
        self._build_handoff_alarms()
        self._build_pair_alarms()

    def _build_topic(self) -> sns.ITopic | None:
        alarms = self.config.alarms
        if self.plan.alarm_topic_arn:
            return sns.Topic.from_topic_arn(self, "AlarmTopic", self.plan.alarm_topic_arn)
        if not alarms.email:
            return None
        topic = sns.Topic(self, "AlarmTopic", topic_name=self.plan.alarm_topic_name, enforce_ssl=True)
        # A topic policy replaces SNS's default one, and enforce_ssl writes a policy holding only the TLS
        # deny: without this statement CloudWatch may not publish, and no alarm would reach anyone.
        # Scoped to this stack's alarms (their names carry the region's prefix) in this account, so no
        # other account's alarm can use the topic (confused deputy).
        topic.add_to_resource_policy(self._cloudwatch_may_publish(topic))
        topic.add_subscription(subscriptions.EmailSubscription(alarms.email))
        return topic

    def _cloudwatch_may_publish(self, topic: sns.ITopic) -> iam.PolicyStatement:
        account, region = self.plan.account, self.plan.region
        alarm_arns = [
            f"arn:{Aws.PARTITION}:cloudwatch:{region}:{account}:alarm:{prefix}-*"
            for prefix in self.publishing_prefixes
        ]
        return iam.PolicyStatement(
            sid="CloudWatchAlarmsOfThisStackPublish",
            principals=[iam.ServicePrincipal("cloudwatch.amazonaws.com")],
            actions=["sns:Publish"],
            resources=[topic.topic_arn],
            conditions={
                # One table: the one ARN pattern as a string, as before tables existed.
                "ArnLike": {"aws:SourceArn": alarm_arns[0] if len(alarm_arns) == 1 else alarm_arns},
                "StringEquals": {"aws:SourceAccount": account},
            },
        )

    def _build_function_alarms(self) -> None:
        alarms = self.config.alarms
        errors = {"Critical": ErrorCountThreshold(max_error_count=alarms.function_errors_max)}
        self.facade.monitor_lambda_function(
            lambda_function=_function_ref(self, "Replicator", self.plan, self.plan.replicator_function_name),
            alarm_friendly_name="replicator",
            add_max_iterator_age_alarm={
                "Critical": MaxAgeThreshold(max_age_in_millis=alarms.iterator_age_seconds * 1000)
            },
            add_fault_count_alarm=errors,
        )
        for target in self.plan.targets:
            self.facade.monitor_lambda_function(
                lambda_function=_function_ref(
                    self, f"Drain-{target.region}", self.plan, target.drain_function_name
                ),
                alarm_friendly_name=f"drain-{target.region}",
                is_iterator=False,
                add_fault_count_alarm=errors,
            )

    def _build_handoff_alarms(self) -> None:
        for target in self.plan.targets:
            self.facade.monitor_sqs_queue_with_dlq(
                queue=_queue_ref(self, f"Handoff-{target.region}", self.plan, target.handoff_queue_name),
                dead_letter_queue=_queue_ref(
                    self, f"HandoffDlq-{target.region}", self.plan, target.handoff_dlq_name
                ),
                alarm_friendly_name=f"handoff-{target.region}",
                # Not draining: the oldest handed-off write has waited too long for its target.
                add_queue_max_message_age_alarm={
                    "Critical": MaxMessageAgeThreshold(
                        max_age_in_seconds=self.config.alarms.handoff_age_seconds
                    )
                },
                # Anything here gave up after HANDOFF_MAX_RECEIVE_COUNT replays: a person must look.
                add_dead_letter_queue_max_size_alarm={
                    "Critical": MaxMessageCountThreshold(
                        max_message_count=0, evaluation_periods=1, datapoints_to_alarm=1
                    )
                },
            )
        self.facade.monitor_custom(
            metric_groups=[
                CustomMetricGroup(
                    title="handoffs waiting", metrics=[self._waiting_alarm(t) for t in self.plan.targets]
                )
            ],
            alarm_friendly_name="handoffs",
        )

    def _waiting_alarm(self, target: TargetPlan) -> CustomMetricWithAlarm:
        """Writes the drain keeps failing to replay: its target has not taken them for a while.

        The age alarm above cannot tell it: SQS leaves a message received three times and not deleted out
        of ApproximateAgeOfOldestMessage (docs.aws.amazon.com/AWSSimpleQueueService/latest/
        SQSDeveloperGuide/sqs-available-cloudwatch-metrics.html), and the drain's backoff receives each
        waiting write a third time within about 3 minutes, so that alarm only sees writes the drain has
        not received yet (a drain that is not running). Between its replays a waiting write is not
        visible: a queue that has held one every minute of ``handoff_age_seconds`` has a write waiting
        that long (one period may miss it, when a sample falls in the seconds it is visible).
        """
        periods = max(1, math.ceil(self.config.alarms.handoff_age_seconds / PERIOD.to_seconds()))
        pair = f"{target.source_region}-to-{target.region}"
        return CustomMetricWithAlarm(
            metric=cloudwatch.Metric(
                namespace="AWS/SQS",
                metric_name="ApproximateNumberOfMessagesNotVisible",
                dimensions_map={"QueueName": target.handoff_queue_name},
                statistic="Minimum",
                period=PERIOD,
                label=f"{pair} handoffs waiting for a replay",
            ),
            alarm_friendly_name=f"handoff-waiting-{pair}",
            add_alarm={
                "Critical": CustomThreshold(
                    threshold=0,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                    evaluation_periods=periods + 1,
                    datapoints_to_alarm=periods,
                    treat_missing_data_override=cloudwatch.TreatMissingData.NOT_BREACHING,
                    additional_description=(
                        f"Writes handed off to {target.region} have waited for a replay for "
                        f"{self.config.alarms.handoff_age_seconds} s: the target does not take them (see "
                        "the messages' reason; docs/OPERATIONS.md, Handoff)"
                    ),
                )
            },
        )

    def _build_pair_alarms(self) -> None:
        metrics = ReplicationMetrics(self.config.function.metrics_namespace, self.plan.account)
        latency_ms = self.config.alarms.latency_p99_ms
        groups = []
        for target in self.plan.targets:
            pair = f"{target.source_region}-to-{target.region}"
            groups.append(
                CustomMetricGroup(
                    title=f"{pair} alarms",
                    metrics=[
                        CustomMetricWithAlarm(
                            metric=metrics.pair(names.REPLICATION_LATENCY, target, "p99"),
                            alarm_friendly_name=f"latency-p99-{pair}",
                            add_alarm={
                                "Critical": CustomThreshold(
                                    threshold=latency_ms,
                                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                                    additional_description=f"Replication p99 above {latency_ms} ms",
                                )
                            },
                        ),
                        # One dead letter is enough: it waits for a redrive.
                        _any_is_critical(
                            metrics.pair(names.DEAD_LETTERED, target),
                            f"dead-letters-{pair}",
                            "Records parked in the dead-letter store",
                        ),
                        _any_is_critical(
                            metrics.pair(names.HANDOFF_FAILED, target),
                            f"handoff-failed-{pair}",
                            "Writes neither applied nor handed off: Lambda retries the batch and the stream "
                            "stalls (check the handoff queue and the dead-letter bucket)",
                        ),
                    ],
                )
            )
        region = self.plan.region
        groups.append(
            CustomMetricGroup(
                title=f"{region} alarms",
                metrics=[
                    _any_is_critical(
                        metrics.source(names.DEAD_LETTERED, region),
                        f"dead-letters-{region}",
                        "Records of this region's stream parked in the dead-letter store (malformed, or "
                        "rejected by the local table)",
                    ),
                    _any_is_critical(
                        metrics.source(names.FUTURE_VERSIONS_REJECTED, region),
                        f"future-versions-{region}",
                        "Local writes stamped beyond now + the maximum clock skew, refused and "
                        "dead-lettered: the clock of this region's writers runs ahead (check their NTP)",
                    ),
                    _any_is_critical(
                        self._stream_mapping_metric(DISCARDED_TO_DESTINATION),
                        f"discarded-batches-{region}",
                        "Lambda gave up on stream batches (retries exhausted or record age exceeded): their "
                        "records were not replicated. Run `ddbrep redrive` within 24 h (docs/OPERATIONS.md, "
                        "Discarded batch)",
                    ),
                    _any_is_critical(
                        self._stream_mapping_metric(DISCARDED_AND_LOST),
                        f"dropped-records-{region}",
                        "Lambda discarded stream records and could not describe them in the dead-letter "
                        "bucket: run `ddbrep verify --repair` for every pair of this region",
                    ),
                ],
            )
        )
        self.facade.monitor_custom(metric_groups=groups, alarm_friendly_name="pairs")

    def _stream_mapping_metric(self, metric_name: str) -> cloudwatch.Metric:
        return cloudwatch.Metric(
            namespace=ESM_NAMESPACE,
            metric_name=metric_name,
            dimensions_map={ESM_DIMENSION: self.stream_mapping_id},
            statistic="Sum",
            period=PERIOD,
            label=f"{self.plan.region} stream records {metric_name}",
        )


def _any_is_critical(metric: cloudwatch.Metric, name: str, description: str) -> CustomMetricWithAlarm:
    """An alarm on the first non-zero datapoint of a count that should stay at zero."""
    return CustomMetricWithAlarm(
        metric=metric,
        alarm_friendly_name=name,
        add_alarm={
            "Critical": CustomThreshold(
                threshold=0,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
                evaluation_periods=1,
                datapoints_to_alarm=1,
                treat_missing_data_override=cloudwatch.TreatMissingData.NOT_BREACHING,
                additional_description=description,
            )
        },
    )


class ReplicationDashboard(Construct):
    """The deployment's one dashboard: every region's replication, functions and handoff queues."""

    def __init__(self, scope: Construct, construct_id: str, *, config: ReplicationConfig) -> None:
        super().__init__(scope, construct_id)
        self.config = config
        self.dashboard_name = config.dashboard_name
        self.facade = MonitoringFacade(
            self,
            "Facade",
            alarm_factory_defaults=AlarmFactoryDefaults(
                alarm_name_prefix=config.dashboard_name, actions_enabled=False
            ),
            dashboard_factory=DefaultDashboardFactory(
                self,
                "Dashboards",
                dashboard_name_prefix=config.dashboard_name,
                create_dashboard=True,
                create_summary_dashboard=False,
                create_alarm_dashboard=False,
            ),
        )
        region_count = len(config.regions)
        if len(config.tables) == 1:
            # One table: the dashboard of a deployment made before tables existed, widget for widget.
            only = config.region(config.dashboard_region).table_name
            self.facade.add_large_header(f"Replication of {only} ({config.topology}, {region_count} regions)")
            self._build_table_widgets(config, "")
            return
        names = ", ".join(t.region(config.dashboard_region).table_name for t in config.tables)
        self.facade.add_large_header(
            f"Replication of {len(config.tables)} tables: {names} ({config.topology}, {region_count} regions)"
        )
        for table in config.tables:
            name = table.region(config.dashboard_region).table_name
            self.facade.add_medium_header(f"Table {name}")
            # Each table's functions emit under its own namespace (TableConfig.metrics_namespace).
            self._build_table_widgets(config.for_table(table), f"{name}-")

    def _build_table_widgets(self, config: ReplicationConfig, prefix: str) -> None:
        """One table's pair widgets and per-region widgets; ``prefix`` tells the tables' apart."""
        self.metrics = ReplicationMetrics(config.function.metrics_namespace, config.account)
        self.prefix = prefix
        sources = [plan for plan in config.regions if plan.is_source]
        self._build_pair_widgets(sources)
        for plan in sources:
            self._build_region_widgets(plan)

    def _build_pair_widgets(self, sources: Sequence[RegionPlan]) -> None:
        targets = [target for plan in sources for target in plan.targets]
        groups = [
            CustomMetricGroup(
                title=f"Replication latency {statistic} (ms)",
                metrics=[self.metrics.pair(names.REPLICATION_LATENCY, t, statistic) for t in targets],
            )
            for statistic in LATENCY_STATISTICS
        ]
        groups.append(
            CustomMetricGroup(
                title="Writes applied (replicator + drain): SampleCount of ReplicationLatency",
                metrics=[self.metrics.pair(names.REPLICATION_LATENCY, t, APPLIED_STATISTIC) for t in targets],
            )
        )
        groups += [
            CustomMetricGroup(title=metric_name, metrics=[self.metrics.pair(metric_name, t) for t in targets])
            for metric_name in PAIR_COUNTS
        ]
        self.facade.monitor_custom(
            metric_groups=groups,
            alarm_friendly_name=f"{self.prefix}pairs",
            human_readable_name=f"{self.prefix}every source -> target pair"
            if self.prefix
            else "Every source -> target pair",
        )

    def _build_region_widgets(self, plan: RegionPlan) -> None:
        region = plan.region
        self.facade.monitor_custom(
            metric_groups=[
                CustomMetricGroup(
                    title=f"{region}: {metric_name}", metrics=[self.metrics.source(metric_name, region)]
                )
                for metric_name in names.SOURCE_METRICS
            ],
            alarm_friendly_name=f"{self.prefix}source-{region}",
            human_readable_name=f"{self.prefix}{region}: records received and skipped (echoes, TTL, ...)",
        )
        self.facade.monitor_lambda_function(
            lambda_function=_function_ref(
                self, f"{self.prefix}Replicator-{region}", plan, plan.replicator_function_name
            ),
            region=region,
            account=plan.account,
            alarm_friendly_name=f"{self.prefix}replicator-{region}",
            human_readable_name=f"{region}: replicator {plan.replicator_function_name}",
        )
        for target in plan.targets:
            pair = f"{self.prefix}{region}-{target.region}"
            self.facade.monitor_lambda_function(
                lambda_function=_function_ref(self, f"Drain-{pair}", plan, target.drain_function_name),
                region=region,
                account=plan.account,
                is_iterator=False,
                alarm_friendly_name=f"drain-{pair}",
                human_readable_name=f"{self.prefix}{region}: drain to {target.region}",
            )
            self.facade.monitor_sqs_queue_with_dlq(
                queue=_queue_ref(self, f"Handoff-{pair}", plan, target.handoff_queue_name),
                dead_letter_queue=_queue_ref(self, f"HandoffDlq-{pair}", plan, target.handoff_dlq_name),
                region=region,
                account=plan.account,
                alarm_friendly_name=f"handoff-{pair}",
                human_readable_name=f"{self.prefix}{region}: handoff queue to {target.region}",
            )
