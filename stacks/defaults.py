"""Every default of the CDK app, in one place (docs/CONFIGURATION.md lists them; the infra tests assert them).

Values a user can change through ``cdk.json`` context are marked "(context: ...)" with their key.
"""

from __future__ import annotations

from replicator.core.backoff import HANDOFF_BACKOFF as _DRAIN_BACKOFF

# The Powertools public layer the functions run with. Must equal the aws-lambda-powertools pin in
# requirements-dev.txt (tests run the handler against that version; a test checks the two agree).
POWERTOOLS_VERSION = "3.37.0"
PYTHON_RUNTIME = "python3.13"
# arm64 (Graviton): Lambda's duration price is 20 % lower than x86_64's for the same GB-s, and every
# function here is pure Python (the asset is the handler package only; boto3 comes with the runtime and
# Powertools publishes an arm64 layer under the same SSM path with arm64 in place of x86_64).
FUNCTION_ARCHITECTURE = "arm64"
POWERTOOLS_LAYER_PARAMETER = (
    f"/aws/service/powertools/python/{FUNCTION_ARCHITECTURE}/{PYTHON_RUNTIME}/{POWERTOOLS_VERSION}"
)

REPLICATOR_HANDLER = "replicator.handler.lambda_handler"
DRAIN_HANDLER = "replicator.drain.lambda_handler"
BACKFILL_HANDLER = "replicator.backfill_job.lambda_handler"
# The Lambda asset: the folder that holds the `replicator` package (not a Python package itself).
LAMBDA_ASSET_DIR = "lambda"
LAMBDA_ASSET_EXCLUDE = ("tests", "**/__pycache__", "**/*.pyc", "**/.pytest_cache", "**/.mypy_cache")

# Synthesis works offline with a placeholder account; a real deployment sets it (context: account).
PLACEHOLDER_ACCOUNT = "111111111111"
CONTEXT_KEY = "replication"
STACK_ID_PREFIX = "Replicator-"

TOPOLOGIES = ("mesh", "one-way")
KEY_TYPES = ("S", "N", "B")

# Commercial AWS regions (where DynamoDB Streams and Lambda event source mappings exist). A region not in
# this list is almost always a typo; a genuinely new region is added here.
KNOWN_REGIONS = (
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
)

# Item metadata (docs/DESIGN.md, Item metadata and versions). (context: attribute_prefix, table.ttl_attribute)
# A tombstone must outlive every write that can still arrive for its key: one waiting in the stream
# (24 h) or in a handoff queue (handoff_retention_days). Otherwise a replayed older write, finding no
# tombstone, would bring a deleted item back. (context: tombstone_retention_days)
# A version further ahead of the receiving region's clock than the maximum skew is dead-lettered.
# (context: max_clock_skew_seconds)
# These protocol defaults are defined once, in the function's core, and shared with the helper and tools.
from replicator.core.defaults import ATTRIBUTE_PREFIX as ATTRIBUTE_PREFIX  # noqa: E402
from replicator.core.defaults import CONFLICT_LOG_MAX_RECORDS as CONFLICT_LOG_MAX_RECORDS  # noqa: E402
from replicator.core.defaults import CONFLICT_PREFIX as CONFLICT_PREFIX  # noqa: E402
from replicator.core.defaults import DEAD_LETTER_PREFIX as DEAD_LETTER_PREFIX  # noqa: E402
from replicator.core.defaults import DEAD_LETTER_RETENTION_DAYS as DEAD_LETTER_RETENTION_DAYS  # noqa: E402
from replicator.core.defaults import HANDOFF_PREFIX as HANDOFF_PREFIX  # noqa: E402
from replicator.core.defaults import MAX_CLOCK_SKEW_SECONDS as MAX_CLOCK_SKEW_SECONDS  # noqa: E402
from replicator.core.defaults import ON_FAILURE_PREFIX as ON_FAILURE_PREFIX  # noqa: E402
from replicator.core.defaults import RETRY_BASE_DELAY_MS as RETRY_BASE_DELAY_MS  # noqa: E402
from replicator.core.defaults import STREAM_RETENTION_DAYS as STREAM_RETENTION_DAYS  # noqa: E402
from replicator.core.defaults import TOMBSTONE_RETENTION_DAYS as TOMBSTONE_RETENTION_DAYS  # noqa: E402
from replicator.core.defaults import WRITE_ATTEMPTS as WRITE_ATTEMPTS  # noqa: E402
from replicator.core.defaults import object_prefix as object_prefix  # noqa: E402

MAX_CLOCK_SKEW_RANGE = (1, 86_400)
# (context: dead_letter_retention_days) at least the tombstone retention, at most ten years.
DEAD_LETTER_RETENTION_MAX_DAYS = 3650
# Noncurrent versions (a redriven, rewritten or deleted entry) each hold a full item: kept one day.
NONCURRENT_VERSION_DAYS = 1

# Tables. (context: table.*)
POINT_IN_TIME_RECOVERY = True
DELETION_PROTECTION = True
# The shape of a created table, the same in every region (context: table.global_secondary_indexes,
# table.local_secondary_indexes, table.billing, table.table_class, table.tags).
BILLING_ON_DEMAND = "on_demand"
BILLING_PROVISIONED = "provisioned"
BILLING_MODES = (BILLING_ON_DEMAND, BILLING_PROVISIONED)
# A capacity (provisioned units, on-demand maximum request units): DynamoDB's per-table quota (40,000 by
# default, adjustable) applies at deploy time; this range only catches nonsense.
CAPACITY_RANGE = (1, 1_000_000)
# Application Auto Scaling's target tracking on DynamoDB accepts 20 to 90 % utilization; 70 is the
# console's default.
AUTOSCALING_TARGET_UTILIZATION = 70
AUTOSCALING_TARGET_RANGE = (20, 90)
# Not written to the template when not set: DynamoDB's default is STANDARD.
TABLE_CLASSES = ("STANDARD", "STANDARD_INFREQUENT_ACCESS")
PROJECTION_TYPES = ("ALL", "KEYS_ONLY")  # or a list of non-key attributes (INCLUDE)
MAX_GLOBAL_SECONDARY_INDEXES = 20  # DynamoDB's default quota per table
MAX_LOCAL_SECONDARY_INDEXES = 5  # DynamoDB's limit per table
MAX_PROJECTED_ATTRIBUTES = 100  # non-key attributes projected by all indexes of a table together
MAX_TAGS = 50  # per AWS resource
# replication.tables: each table's replication unit adds about 15 resources per target region to a region's
# stack (function, role, policy, log group, mapping per drain; two queues and their policies; alarms), and a
# CloudFormation stack holds at most 500. Ten tables fit a mesh of three regions.
MAX_TABLES = 10
STACK_RESOURCE_LIMIT = 500
# Lambda's limit on a function's environment variables, names and values together.
LAMBDA_ENVIRONMENT_LIMIT_BYTES = 4096
# In a mesh of this many regions or more, a provisioned table without auto scaling gets a synth warning:
# every table takes the writes of every region (docs/CONFIGURATION.md, billing).
CAPACITY_WARNING_MIN_REGIONS = 3

# Deployments: a name in every stack id and physical name lets two deployments share an account and
# region (context: deployment_name). Without one, names are those of the first release (upgrades keep
# their stacks).
DEPLOYMENT_NAME_MAX_LENGTH = 32

# The one event source mapping per source table. (context: stream.*, overridable per source region)
BATCH_SIZE = 100
BATCH_SIZE_RANGE = (1, 10_000)  # Lambda's limits for DynamoDB Streams
# 0: Lambda invokes as soon as records arrive, so writes reach the other regions within a second.
# A window of a few seconds cuts invocations (cost) several-fold at that much latency (BENCHMARKS.md).
BATCHING_WINDOW_SECONDS = 0
BATCHING_WINDOW_RANGE = (0, 300)
PARALLELIZATION_FACTOR = 1
PARALLELIZATION_RANGE = (1, 10)
# Bounded: a poisoned record is bisected down to itself, then parked in the on-failure destination.
RETRY_ATTEMPTS = 10
RETRY_ATTEMPTS_RANGE = (0, 10_000)
# Records older than the stream's own 24 h retention cannot be read anyway; -1 means "no limit".
MAX_RECORD_AGE_SECONDS = -1
MAX_RECORD_AGE_RANGE = (60, 604_800)

# Replicator function. (context: function.*)
# The replicator waits on cross-region writes far longer than it computes, so GB-s fall with memory:
# 256 MB halves 512 MB's duration price, keeps several times the sandbox's measured peak (52 MB locally)
# for 6 MB batches, and stretches the measured handler CPU (about 85 ms per 1000 records x 2 targets on
# one core, bench replicator) by 1769/256 = 6.9x: about 60 ms on a full batch (BENCHMARKS.md, Cost).
FUNCTION_MEMORY_MB = 256
FUNCTION_TIMEOUT_SECONDS = 60
MAX_WORKERS = 16
# function.metrics_flush_seconds: 0 prints every invocation's metrics (replicator/emf.py MetricsBuffer);
# at most 60 s, so a buffered latency is never later than one minute, a fifth of an alarm period.
METRICS_FLUSH_SECONDS = 0
METRICS_FLUSH_SECONDS_MAX = 60
LOG_RETENTION_DAYS = 30
# The retention periods CloudWatch Logs accepts (days -> aws_logs.RetentionDays member).
LOG_RETENTION_CHOICES = {
    1: "ONE_DAY",
    3: "THREE_DAYS",
    5: "FIVE_DAYS",
    7: "ONE_WEEK",
    14: "TWO_WEEKS",
    30: "ONE_MONTH",
    60: "TWO_MONTHS",
    90: "THREE_MONTHS",
    120: "FOUR_MONTHS",
    150: "FIVE_MONTHS",
    180: "SIX_MONTHS",
    365: "ONE_YEAR",
    400: "THIRTEEN_MONTHS",
    545: "EIGHTEEN_MONTHS",
    731: "TWO_YEARS",
    1096: "THREE_YEARS",
    1827: "FIVE_YEARS",
    3653: "TEN_YEARS",
}
METRICS_NAMESPACE = "DynamoDBReplicator"

# Handoff (one queue per target, in the source region) and its drain function.
# SQS maximum: a target may be unreachable this long with nothing lost. (context: handoff_retention_days)
HANDOFF_RETENTION_DAYS = 14
DRAIN_BATCH_SIZE = 10
# Concurrent drain invocations per handoff queue (SQS event source MaximumConcurrency: 2 to 1000).
# Small: a recovering target takes the backlog at about this many batches at a time.
# (context: function.drain_max_concurrency)
DRAIN_MAX_CONCURRENCY = 2
DRAIN_MAX_CONCURRENCY_RANGE = (2, 1000)
DRAIN_TIMEOUT_SECONDS = 60
# AWS's advice for an SQS event source: visibility timeout at least six times the function timeout.
# It only hides a message while a batch runs: a replay that fails sets the message's own visibility
# to the drain's backoff (ChangeMessageVisibility).
HANDOFF_VISIBILITY_FACTOR = 6
# The drain's backoff per message (replicator/core/backoff.py, used by the function itself):
# 1, 2, 4, 8, 16 minutes, then every 27-30 minutes; a write is applied at most 30 minutes after its
# target answers again. Not a context knob: the schedule and the receive count are checked together.
HANDOFF_BACKOFF = _DRAIN_BACKOFF
# SQS's maximum. A message moves to the handoff dead-letter queue after this many receives; the
# backoff makes them span at least HANDOFF_BACKOFF_MARGIN times the retention (about 18.7 days for
# 14), so a write waiting for its target expires with the queue's retention, never in the DLQ early.
# The DLQ catches messages received far more often: a drain that crashes on them (whole-batch failure,
# no backoff set) goes through 1000 receives at the 6-minute timeout in about four days.
HANDOFF_MAX_RECEIVE_COUNT = 1000
HANDOFF_BACKOFF_MARGIN = 1.25
# Handoff payloads too large for a message live under handoff/ in the bucket; they are useless once the
# message that points at them has expired.

# The deployed backfill job (stacks/backfill_job.py), one per source region when enabled.
# (context: backfill.*)
BACKFILL_ENABLED = False
BACKFILL_SEGMENTS = 16
# The state machine lists the segments with States.ArrayRange, which builds at most 1000 items (DynamoDB
# itself would take up to 1,000,000 TotalSegments).
BACKFILL_SEGMENTS_RANGE = (1, 1000)
BACKFILL_MAX_CONCURRENCY = 16
BACKFILL_MAX_CONCURRENCY_RANGE = (1, 10_000)  # a distributed Map runs at most 10,000 child executions
BACKFILL_PAGE_SIZE = 100
BACKFILL_PAGE_SIZE_RANGE = (1, 10_000)  # a scan page also stops at 1 MB, whatever its limit
# Writes per second to each target, per segment; 0: no budget (a segment then writes about 100-300
# items/s per target). The job's total is this times the segments running at once.
BACKFILL_ITEMS_PER_SECOND_PER_SEGMENT = 0
BACKFILL_FUNCTION_TIMEOUT_SECONDS = 900  # Lambda's maximum: fewer hand-overs
BACKFILL_STOP_MARGIN_SECONDS = 60  # a page (scan + writes with retries) must fit in this margin
BACKFILL_FUNCTION_MEMORY_MB = 512
# A failed invocation (a target throttled or unreachable past the function's own retries) is retried
# from the position the loop last received; after these attempts the segment, and the Map, fail.
BACKFILL_TASK_RETRY_ATTEMPTS = 6
BACKFILL_TASK_RETRY_INTERVAL_SECONDS = 30

# Alarms. (context: alarms.*)
ITERATOR_AGE_ALARM_SECONDS = 300
LATENCY_P99_ALARM_MS = 60_000
HANDOFF_AGE_ALARM_SECONDS = 900
FUNCTION_ERRORS_ALARM_MAX = 0  # an alarm fires when a function reports more errors than this in a period
ALARM_PERIOD_MINUTES = 5
