"""AWS list prices the cost model uses: US East (N. Virginia), on-demand, checked 2026-11-23.

Each price names its source. A user's own prices (another region, a discount, a later change) come from
a JSON file of the same keys (``ddbrep cost --prices my-prices.json``); keys it leaves out keep these.

Sources (read 2026-11-23):
- DynamoDB on-demand write request unit, $0.625 per million (halved on 2024-11-01), and global tables'
  replicated write request unit at the same price since that date:
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/global-tables-billing.html
  ("Replicated write units (rWCUs and rWRUs) are priced the same as single-Region write units";
  "one rWRU per replica table is charged for each write up to 1KB"), and the prescriptive guidance FAQ
  https://docs.aws.amazon.com/prescriptive-guidance/latest/dynamodb-global-tables/faq.html
  ("rWRU charges are incurred in every Region where the item is written directly or written through
  replication": the source region included).
- A conditional write whose condition fails still consumes write units (the larger of the stored and
  the new item): DynamoDB developer guide, "Read and write operations" (read-write-operations.html).
- DynamoDB Streams reads made by Lambda triggers are free:
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CostOptimization_StreamsUsage.html
- Lambda $0.20 per million requests; $0.0000166667 per GB-second on x86_64, $0.0000133334 on arm64
  (first pricing tier): https://aws.amazon.com/lambda/pricing/
- Inter-region data transfer out, $0.02 per GB from us-east-1 to most regions (some pairs differ:
  us-east-1 <-> us-east-2 $0.01; set your pair's rate in the prices file):
  https://aws.amazon.com/ec2/pricing/on-demand/ (Data Transfer, "between AWS Regions").
- CloudWatch Logs ingestion $0.50 per GB (standard class); custom metrics $0.30 per metric-month
  (first 10,000; EMF metrics are custom metrics): https://aws.amazon.com/cloudwatch/pricing/
- SQS standard $0.40 per million requests, each 64 KB chunk of a payload billed as one request:
  https://aws.amazon.com/sqs/pricing/
- S3 Standard PUT $0.005 per 1,000 requests: https://aws.amazon.com/s3/pricing/
Free tiers are left out: the model prices a deployment's marginal cost.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

CHECKED = "2026-11-23"
REGION = "us-east-1"


@dataclass(frozen=True)
class Prices:
    """USD list prices; every field can be overridden from a JSON file of the same names."""

    write_request_unit_per_million: float = 0.625
    replicated_write_request_unit_per_million: float = 0.625
    read_request_unit_per_million: float = 0.125
    lambda_requests_per_million: float = 0.20
    lambda_gb_second_x86_64: float = 0.0000166667
    lambda_gb_second_arm64: float = 0.0000133334
    inter_region_transfer_per_gb: float = 0.02
    logs_ingestion_per_gb: float = 0.50
    custom_metric_per_month: float = 0.30
    sqs_requests_per_million: float = 0.40
    sqs_request_chunk_bytes: int = 64 * 1024
    s3_put_per_thousand: float = 0.005
    stream_reads_by_lambda: float = 0.0

    def lambda_gb_second(self, architecture: str) -> float:
        if architecture == "arm64":
            return self.lambda_gb_second_arm64
        if architecture == "x86_64":
            return self.lambda_gb_second_x86_64
        raise ValueError(f"unknown Lambda architecture {architecture!r}: use arm64 or x86_64")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_PRICES = Prices()


class PricesError(ValueError):
    """A prices file names an unknown key or gives a value that is not a non-negative number."""


def with_overrides(base: Prices, overrides: Mapping[str, Any]) -> Prices:
    known = {f.name for f in fields(Prices)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise PricesError(f"unknown price {unknown[0]!r}. Fix: use one of {', '.join(sorted(known))}")
    for key, value in overrides.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise PricesError(f"price {key} = {value!r} must be a non-negative number (USD)")
    return replace(base, **dict(overrides))


def load_prices(path: Path | None) -> Prices:
    """The default prices, with a JSON file's values in their place (``None``: the defaults)."""
    if path is None:
        return DEFAULT_PRICES
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise PricesError(f"cannot read prices file {path}: {err}") from None
    if not isinstance(document, dict):
        raise PricesError(f"prices file {path} must hold a JSON object of price names to numbers")
    return with_overrides(DEFAULT_PRICES, document)
