"""Session-scoped synthesis: jsii start-up and synthesis are slow, so each app is synthesized once."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from stacks import defaults
from stacks.config import ReplicationConfig

ROOT = Path(__file__).resolve().parents[2]
CDK_JSON_CONTEXT: dict[str, Any] = json.loads((ROOT / "cdk.json").read_text())["context"]


@dataclass(frozen=True)
class Synthesized:
    config: ReplicationConfig
    templates: dict[str, dict[str, Any]]  # region -> template
    outdir: Path

    def template(self, region: str) -> dict[str, Any]:
        return self.templates[region]

    def resources(self, region: str, kind: str) -> dict[str, dict[str, Any]]:
        return {k: r for k, r in self.templates[region]["Resources"].items() if r["Type"] == kind}

    def only(self, region: str, kind: str) -> dict[str, Any]:
        found = list(self.resources(region, kind).values())
        assert len(found) == 1, f"{region}: expected one {kind}, found {len(found)}"
        return found[0]


def synthesize(outdir: Path, replication: Any, account: Any = None) -> Synthesized:
    """Build the app exactly as app.py does (same builder, cdk-nag included) and synthesize it."""
    from aws_cdk import App

    from stacks.app_builder import build_app

    context = {k: v for k, v in copy.deepcopy(CDK_JSON_CONTEXT).items() if k != defaults.CONTEXT_KEY}
    app = App(outdir=str(outdir), context=context)
    config, stacks = build_app(app, replication=replication, account=account)
    assembly = app.synth()  # raises when cdk-nag reports an unacknowledged finding
    templates = {stack.region: assembly.get_stack_by_name(stack.stack_name).template for stack in stacks}
    return Synthesized(config=config, templates=templates, outdir=outdir)


THREE_REGION_MESH = CDK_JSON_CONTEXT[defaults.CONTEXT_KEY]

# Every knob set away from its default, on a two-region mesh.
ITEM_FILTER = {"tenant": {"S": [{"prefix": "eu-"}]}}
# A mesh writes through a role of its own account (another account is refused: see test_config).
REPLICA_ROLE = "arn:aws:iam::222222222222:role/orders-replica-writer"
TOPIC_EU = "arn:aws:sns:eu-west-1:222222222222:ops-alarms"
TWO_REGION_MESH: dict[str, Any] = {
    "account": "222222222222",
    "topology": "mesh",
    "regions": ["us-west-2", "eu-west-1"],
    "table": {
        "name": {"us-west-2": "orders_usw2", "eu-west-1": "orders.euw1"},
        "partition_key": {"name": "tenant", "type": "S"},
        "sort_key": {"name": "seq", "type": "N"},
        "ttl_attribute": "expires_at",
        "point_in_time_recovery": False,
        "deletion_protection": False,
        "adopt_existing": ["eu-west-1"],
    },
    "attribute_prefix": "x_",
    "tombstone_retention_days": 10,
    "handoff_retention_days": 7,
    "stream": {
        "batch_size": 250,
        "batching_window_seconds": 5,
        "parallelization_factor": 4,
        "retry_attempts": 3,
        "max_record_age_seconds": 3600,
    },
    "sources": {"eu-west-1": {"batch_size": 50}},
    "pairs": {"us-west-2->eu-west-1": {"item_filter": ITEM_FILTER, "role_arn": REPLICA_ROLE}},
    "function": {
        "memory_mb": 1024,
        "timeout_seconds": 120,
        "max_workers": 8,
        "write_attempts": 6,
        "retry_base_delay_ms": 100,
        "conflict_log_max_records": 25,
        "conflict_log_images": True,
        "log_retention_days": 90,
        "metrics_namespace": "Orders/Replication",
    },
    "alarms": {
        "email": "ops@example.com",
        "topic_arns": {"eu-west-1": TOPIC_EU},
        "iterator_age_seconds": 120,
        "latency_p99_ms": 5000,
        "handoff_age_seconds": 600,
        "function_errors_max": 3,
    },
    "dashboard_region": "eu-west-1",
    "backfill": {
        "enabled": True,
        "segments": 24,
        "max_concurrency": 6,
        "page_size": 250,
        "items_per_second_per_segment": 50,
    },
}

ONE_WAY: dict[str, Any] = {
    "topology": "one-way",
    "source": "us-east-1",
    "replicas": ["eu-central-1", "ap-northeast-1"],
    "table": {"name": "catalog", "partition_key": {"name": "sku", "type": "S"}},
}


@pytest.fixture(scope="session")
def mesh3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize(tmp_path_factory.mktemp("mesh3"), THREE_REGION_MESH)


@pytest.fixture(scope="session")
def mesh2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    # The replication block arrives as a JSON string, as it does from `-c replication='{...}'`.
    yield synthesize(tmp_path_factory.mktemp("mesh2"), json.dumps(TWO_REGION_MESH))


@pytest.fixture(scope="session")
def one_way(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize(tmp_path_factory.mktemp("oneway"), ONE_WAY, account="444444444444")


# Two tables in a two-region mesh: the first as cdk.json's, the second with an index, its own billing and
# an item filter of its own for one pair; alarms by email (the region's topic) and the backfill job.
ORDERS: dict[str, Any] = {
    "name": "orders",
    "partition_key": {"name": "pk", "type": "S"},
    "sort_key": {"name": "sk", "type": "S"},
}
CUSTOMERS_FILTER = {"tier": {"S": ["gold"]}}
CUSTOMERS: dict[str, Any] = {
    "name": "customers",
    "partition_key": {"name": "id", "type": "S"},
    "global_secondary_indexes": [
        {"name": "by-email", "partition_key": {"name": "email", "type": "S"}, "projection": "ALL"}
    ],
    "billing": {"mode": "provisioned", "read_capacity": 5, "write_capacity": 5},
    "pairs": {"us-east-1->eu-west-1": {"item_filter": CUSTOMERS_FILTER}},
}
ONE_TABLE_BASE: dict[str, Any] = {
    "topology": "mesh",
    "regions": ["us-east-1", "eu-west-1"],
    "alarms": {"email": "ops@example.com"},
    "backfill": {"enabled": True},
}
ONE_TABLE: dict[str, Any] = {**ONE_TABLE_BASE, "table": ORDERS}
TWO_TABLES: dict[str, Any] = {**ONE_TABLE_BASE, "tables": [ORDERS, CUSTOMERS]}


@pytest.fixture(scope="session")
def one_table(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize(tmp_path_factory.mktemp("one-table"), ONE_TABLE)


@pytest.fixture(scope="session")
def one_table_listed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize(tmp_path_factory.mktemp("one-table-listed"), {**ONE_TABLE_BASE, "tables": [ORDERS]})


@pytest.fixture(scope="session")
def two_tables(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Synthesized]:
    yield synthesize(tmp_path_factory.mktemp("two-tables"), TWO_TABLES)
