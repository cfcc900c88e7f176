"""The cost model: hand-checked numbers for a 2-region mesh, and each input moving the line it should."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import pytest

from ddbrep.cli import cost_cmd
from ddbrep.tools import cost
from ddbrep.tools.cost import (
    SECONDS_PER_MONTH,
    CostInputError,
    Deployment,
    Figures,
    Level,
    Linear,
    Source,
    Workload,
    deployment_from_config,
    estimate,
    records_per_invocation,
)
from ddbrep.tools.prices import DEFAULT_PRICES, PricesError, load_prices
from stacks.config import load_config

GIB = 1024**3
FIGURES = Figures(
    low=Level(1.0, Linear(200.0, 400.0), Linear(50.0, 10.0)),
    high=Level(100.0, Linear(1000.0, 2000.0), Linear(100.0, 50.0)),
    metadata_bytes=80,
    transfer_overhead_bytes=1500.0,
    tombstone_transfer_bytes=1600.0,
    stale_per_hot_share=0.5,
    coalesced_per_hot_share=0.0,
    adoptions_per_unstamped=1.0,
    extra_invocations_per_unstamped=1.0,
)


def mesh(regions: int = 2, window: int = 1, memory_mb: int = 1024, architecture: str = "arm64") -> Deployment:
    names = ("us-east-1", "eu-west-1", "ap-southeast-2", "eu-central-1", "us-west-2")[:regions]
    sources = tuple(Source(r, tuple(t for t in names if t != r), (), 100, window) for r in names)
    return Deployment(names, sources, memory_mb, architecture)


def lines(est: cost.Estimate) -> dict[str, float]:
    return {line.name: line.usd for line in est.product}


def test_a_two_region_mesh_at_full_batches_hand_checked() -> None:
    # Given 2 regions, 100 writes/s each, a 1 s window (100 records per invocation), 500-byte items
    est = estimate(mesh(), Workload(100.0), FIGURES, DEFAULT_PRICES)
    writes = 100 * SECONDS_PER_MONTH  # 262,800,000 per region
    assert est.source_writes_per_month == 2 * writes
    assert est.records_per_invocation == 100.0
    usd = lines(est)
    # 580 bytes with the metadata: 1 WRU per write; $0.625 per million
    assert usd["source writes"] == pytest.approx(2 * writes * 0.625e-6)  # $328.50
    assert usd["target writes (applied)"] == pytest.approx(328.50)
    assert usd["stale conditional writes"] == 0 and usd["adoption writes"] == 0
    invocations = 2 * writes / 100  # 5,256,000
    assert usd["Lambda requests"] == pytest.approx(invocations * 0.20e-6)  # $1.05
    # high-traffic duration with 1 target: 100 + 50 ms; 1 GB; arm64 price
    assert usd["Lambda duration"] == pytest.approx(invocations * 0.150 * 1.0 * 0.0000133334)  # $10.51
    # 1000 + 2000 log bytes + 260 platform bytes per invocation, $0.50 per GB
    assert usd["logs (EMF + platform lines)"] == pytest.approx(invocations * 3260 / GIB * 0.50)  # $7.98
    # 1500 bytes of request/response around each 580-byte item, $0.02 per GB
    assert usd["inter-region transfer"] == pytest.approx(2 * writes * 2080 / GIB * 0.02)  # $20.36
    assert usd["handoff queues (idle polling)"] == pytest.approx(2 * 5 * SECONDS_PER_MONTH / 20 * 0.40e-6)
    # per source RecordsReceived, per pair ReplicationLatency: the metrics a healthy month sends every hour
    assert usd["custom metrics"] == pytest.approx(4 * 0.30)
    assert usd["S3 (dead letters, oversized handoffs)"] == 0
    # Global tables: an rWRU in both regions for each write, and the item sent once across
    gt = {line.name: line.usd for line in est.global_tables}
    assert gt["replicated writes (every region, the source included)"] == pytest.approx(
        2 * writes * 2 * 0.625e-6
    )
    assert gt["inter-region transfer"] == pytest.approx(2 * writes * 500 / GIB * 0.02)
    assert est.ratio == pytest.approx(est.product_usd / (657.0 + 2 * writes * 500 / GIB * 0.02))
    assert est.per_million(est.global_tables_usd) == pytest.approx(est.global_tables_usd / (2 * writes / 1e6))


def test_one_record_per_invocation_at_low_traffic() -> None:
    est = estimate(mesh(window=0), Workload(1.0), FIGURES, DEFAULT_PRICES)
    requests = next(line for line in est.product if line.name == "Lambda requests")
    assert est.records_per_invocation == 1.0
    assert requests.quantity == pytest.approx(est.source_writes_per_month)
    duration = next(line for line in est.product if line.name == "Lambda duration")
    assert duration.quantity == pytest.approx(est.source_writes_per_month * 0.060)  # low: 50 + 10 ms, 1 GB


def test_records_per_invocation_follow_window_and_batch_size() -> None:
    source = Source("us-east-1", ("eu-west-1",), (), 100, 0)
    assert records_per_invocation(source, 2.0) == 1.0  # 2/s within one 250 ms poll: one record
    assert records_per_invocation(source, 40.0) == 10.0
    assert records_per_invocation(replace(source, batching_window_seconds=5), 40.0) == 100.0  # capped


def test_stale_writes_cost_what_applied_ones_do() -> None:
    cold = lines(estimate(mesh(), Workload(100.0), FIGURES, DEFAULT_PRICES))
    hot = lines(estimate(mesh(), Workload(100.0, hot_share=0.4), FIGURES, DEFAULT_PRICES))
    assert hot["stale conditional writes"] == pytest.approx(cold["target writes (applied)"] * 0.4 * 0.5)
    assert hot["stale conditional writes"] + hot["target writes (applied)"] == pytest.approx(
        cold["target writes (applied)"]
    )


def test_unstamped_writes_add_adoption_writes_and_invocations() -> None:
    base = estimate(mesh(window=0), Workload(1.0), FIGURES, DEFAULT_PRICES)
    adopted = estimate(mesh(window=0), Workload(1.0, unstamped_share=0.5), FIGURES, DEFAULT_PRICES)
    writes = base.source_writes_per_month
    assert lines(adopted)["adoption writes"] == pytest.approx(writes * 0.5 * 0.625e-6)
    requests = {
        e: next(x.quantity for x in e.product if x.name == "Lambda requests") for e in (base, adopted)
    }
    assert requests[adopted] == pytest.approx(requests[base] + writes * 0.5)


def test_a_partial_filter_sends_tombstones_of_one_unit_for_the_items_it_excludes() -> None:
    # Given 2-KB items (3 WRU with the metadata) and a filter passing 10 % on every pair
    deployment = mesh()
    filtered = replace(
        deployment, sources=tuple(replace(s, filtered_targets=s.targets) for s in deployment.sources)
    )
    full = lines(estimate(deployment, Workload(100.0, item_bytes=2048), FIGURES, DEFAULT_PRICES))
    partial = lines(
        estimate(filtered, Workload(100.0, item_bytes=2048, filter_pass_share=0.1), FIGURES, DEFAULT_PRICES)
    )
    assert partial["target writes (applied)"] == pytest.approx(
        full["target writes (applied)"] * (0.1 * 3 + 0.9) / 3
    )
    writes = 2 * 100 * SECONDS_PER_MONTH
    expected = writes * (0.1 * (1500 + 2048 + 80) + 0.9 * 1600) / GIB * 0.02
    assert partial["inter-region transfer"] == pytest.approx(expected)


def test_the_metadata_can_push_an_item_over_a_write_unit() -> None:
    est = estimate(mesh(), Workload(100.0, item_bytes=1000), FIGURES, DEFAULT_PRICES)
    writes = 2 * 100 * SECONDS_PER_MONTH
    assert lines(est)["source writes"] == pytest.approx(writes * 2 * 0.625e-6)  # 1080 bytes: 2 WRU
    gt = est.global_tables[0]
    assert gt.quantity == pytest.approx(writes * 2 * 1)  # global tables: 1000 bytes, 1 rWRU per region


def test_architecture_and_memory_price_the_duration() -> None:
    arm = lines(estimate(mesh(architecture="arm64"), Workload(100.0), FIGURES, DEFAULT_PRICES))
    x86 = lines(
        estimate(mesh(architecture="x86_64", memory_mb=512), Workload(100.0), FIGURES, DEFAULT_PRICES)
    )
    assert x86["Lambda duration"] == pytest.approx(arm["Lambda duration"] / 2 * 0.0000166667 / 0.0000133334)


def test_five_regions_use_the_per_target_figures() -> None:
    est = estimate(mesh(regions=5), Workload(100.0), FIGURES, DEFAULT_PRICES)
    writes = 5 * 100 * SECONDS_PER_MONTH
    duration = next(line for line in est.product if line.name == "Lambda duration")
    assert duration.quantity == pytest.approx(writes / 100 * (100 + 50 * 4) / 1000)  # 4 targets each
    assert est.global_tables[0].quantity == pytest.approx(writes * 5)


def test_figures_measured_at_the_system_log_level_warn_add_no_platform_lines() -> None:
    # Given figures measured with the functions' system log level WARN (stacks/runtime.py)
    warn = replace(FIGURES, system_log_level="WARN")
    info = lines(estimate(mesh(), Workload(100.0), FIGURES, DEFAULT_PRICES))
    est = estimate(mesh(), Workload(100.0), warn, DEFAULT_PRICES)
    invocations = 2 * 100 * SECONDS_PER_MONTH / 100
    # Then the logs are the measured bytes alone (1000 + 2000 per invocation), without the 260 platform bytes
    assert lines(est)["logs (EMF + platform lines)"] == pytest.approx(invocations * 3000 / GIB * 0.50)
    assert info["logs (EMF + platform lines)"] == pytest.approx(invocations * 3260 / GIB * 0.50)
    assert any("none (system log level WARN)" in note for note in est.notes)


def test_the_figures_file_says_at_which_system_log_level_it_was_measured() -> None:
    document = json.loads(cost.FIGURES_PATH.read_text())
    assert Figures.from_document(document).system_log_level == document.get("system_log_level", "INFO")
    assert Figures.from_document({**document, "system_log_level": "warn"}).platform_log_bytes == 0
    older = {k: v for k, v in document.items() if k != "system_log_level"}
    assert Figures.from_document(older).platform_log_bytes == cost.TEXT_PLATFORM_LOG_BYTES


def test_only_the_metrics_a_month_keeps_busy_are_billed() -> None:
    # Given a healthy 2-region mesh: per source RecordsReceived, per pair ReplicationLatency (the writes
    # applied are its SampleCount; every failure count is emitted only when non-zero)
    healthy = lines(estimate(mesh(), Workload(1.0), FIGURES, DEFAULT_PRICES))
    assert healthy["custom metrics"] == pytest.approx((2 + 2) * 0.30)
    # When writes are hot and some unstamped: RecordsCoalesced and RecordsAdopted per source, StaleSkipped
    # per pair are sent every hour too
    busy = lines(estimate(mesh(), Workload(1.0, hot_share=0.4, unstamped_share=0.1), FIGURES, DEFAULT_PRICES))
    assert busy["custom metrics"] == pytest.approx((2 * 3 + 2 * 2) * 0.30)


def test_the_model_counts_the_metric_streams_the_bench_measured() -> None:
    # Given the checked-in measurements of a healthy 3-region mesh (`bench cost` counts every
    # (name, dimensions) stream the functions sent)
    document = json.loads(cost.FIGURES_PATH.read_text())
    (measured,) = [s for s in document["scenarios"] if s["scenario"] == "mesh-3 low"]
    est = estimate(mesh(regions=3, window=0), Workload(1.0), FIGURES, DEFAULT_PRICES)
    (metrics,) = [line for line in est.product if line.name == "custom metrics"]
    # Then the model bills exactly those
    assert metrics.quantity == measured["metric_streams"]


def test_a_flush_interval_shares_one_document_among_an_intervals_invocations() -> None:
    # Given 1 write/s per region, one record per invocation, metrics printed at most every 10 s
    every = estimate(mesh(window=0), Workload(1.0), FIGURES, DEFAULT_PRICES)
    est = estimate(replace(mesh(window=0), metrics_flush_seconds=10), Workload(1.0), FIGURES, DEFAULT_PRICES)
    invocations = 2 * SECONDS_PER_MONTH
    # Then 10 invocations print as one of 10 records would (linear 1 -> 100 records: 200 + 400 bytes at
    # 1 record, 1000 + 2000 at 100), shared by the 10; nothing else changes
    at_ten = 600 + (3000 - 600) * (10 - 1) / 99
    assert lines(est)["logs (EMF + platform lines)"] == pytest.approx(
        invocations * (at_ten / 10 + 260) / GIB * 0.50
    )
    assert lines(every)["logs (EMF + platform lines)"] == pytest.approx(
        invocations * (600 + 260) / GIB * 0.50
    )
    assert {k: v for k, v in lines(est).items() if not k.startswith("logs")} == {
        k: v for k, v in lines(every).items() if not k.startswith("logs")
    }
    assert any("at most every 10 s" in note for note in est.notes)
    # And a document holds at most 100 values per metric: full batches share nothing
    assert cost.metrics_merged(10, 1000.0, 100.0) == 1.0
    assert cost.metrics_merged(0, 1.0, 1.0) == 1.0 and cost.metrics_merged(60, 1.0, 1.0) == 60.0


def test_workload_shares_are_checked() -> None:
    with pytest.raises(CostInputError, match="hot_share"):
        estimate(mesh(), Workload(1.0, hot_share=1.5), FIGURES, DEFAULT_PRICES)
    with pytest.raises(CostInputError, match="writes per second"):
        estimate(mesh(), Workload(0.0), FIGURES, DEFAULT_PRICES)


def test_a_prices_file_overrides_what_it_names(tmp_path: Path) -> None:
    path = tmp_path / "prices.json"
    path.write_text(json.dumps({"inter_region_transfer_per_gb": 0.09}))
    prices = load_prices(path)
    assert prices.inter_region_transfer_per_gb == 0.09
    assert prices.write_request_unit_per_million == DEFAULT_PRICES.write_request_unit_per_million
    base = lines(estimate(mesh(), Workload(100.0), FIGURES, DEFAULT_PRICES))
    dearer = lines(estimate(mesh(), Workload(100.0), FIGURES, prices))
    assert dearer["inter-region transfer"] == pytest.approx(base["inter-region transfer"] * 4.5)
    path.write_text(json.dumps({"wru": 1}))
    with pytest.raises(PricesError, match="unknown price 'wru'"):
        load_prices(path)
    path.write_text(json.dumps({"logs_ingestion_per_gb": -1}))
    with pytest.raises(PricesError, match="non-negative"):
        load_prices(path)


def test_the_deployment_comes_from_the_replication_block() -> None:
    config = load_config(
        {
            "topology": "one-way",
            "source": "us-east-1",
            "replicas": ["eu-west-1", "ap-southeast-2"],
            "table": {"name": "orders", "partition_key": {"name": "pk", "type": "S"}},
            "stream": {"batching_window_seconds": 2, "batch_size": 50},
            "function": {"memory_mb": 256},
            "pairs": {"us-east-1->eu-west-1": {"item_filter": {"tier": {"S": ["gold"]}}}},
        }
    )
    deployment = deployment_from_config(config, "arm64")
    assert deployment == Deployment(
        ("us-east-1", "eu-west-1", "ap-southeast-2"),
        (Source("us-east-1", ("eu-west-1", "ap-southeast-2"), ("eu-west-1",), 50, 2),),
        256,
        "arm64",
    )


def cost_args(**overrides: object) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cost_cmd.add_arguments(parser)
    args = parser.parse_args(["--writes-per-second", "1", "--json"])
    args.cdk_json = cost.REPO_ROOT / "cdk.json"
    for key, value in overrides.items():
        setattr(args, key, value)
    return args


def test_the_checked_in_figures_load_and_the_command_prints_both_totals(
    capsys: pytest.CaptureFixture[str],
) -> None:
    figures = cost.load_figures(cost.FIGURES_PATH)
    assert figures.high.records_per_invocation > figures.low.records_per_invocation >= 1.0
    assert cost_cmd.run(cost_args(writes_per_second=10.0)) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["source_writes_per_month"] == pytest.approx(3 * 10 * SECONDS_PER_MONTH)
    assert document["ratio_to_global_tables"] == pytest.approx(
        document["product_usd_per_month"] / document["global_tables_usd_per_month"]
    )
    assert "Lambda arm64" in " ".join(document["notes"])


def test_a_missing_figures_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(CostInputError, match="bench cost --write"):
        cost.load_figures(tmp_path / "none.json")


def test_a_replication_block_given_as_text_replaces_cdk_json(capsys: pytest.CaptureFixture[str]) -> None:
    block = {
        "regions": ["us-east-1", "eu-west-1"],
        "table": {"name": "orders", "partition_key": {"name": "pk", "type": "S"}},
    }
    args = cost_args(replication=json.dumps(block), writes_per_second=2.0)
    assert cost_cmd.run(args) == 0
    document = json.loads(capsys.readouterr().out)
    assert document["source_writes_per_month"] == pytest.approx(2 * 2 * SECONDS_PER_MONTH)


def test_a_deployment_of_several_tables_is_costed_one_table_at_a_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    orders = {"name": "orders", "partition_key": {"name": "pk", "type": "S"}}
    customers = {
        "name": "customers",
        "partition_key": {"name": "id", "type": "S"},
        "pairs": {"us-east-1->eu-west-1": {"item_filter": {"tier": {"S": ["gold"]}}}},
    }
    block = json.dumps({"regions": ["us-east-1", "eu-west-1"], "tables": [orders, customers]})
    # Without --table the command says which tables there are and what to pass
    assert cost_cmd.run(cost_args(replication=block)) == 2
    out = capsys.readouterr().out
    assert "replicates 2 tables (orders, customers)" in out and "pass --table" in out
    assert cost_cmd.run(cost_args(replication=block, table="invoices")) == 2
    assert "--table invoices is not a table of the deployment" in capsys.readouterr().out
    # With --table, that table's pairs (its own filter, passing half the writes) are costed
    documents = {}
    for table in ("orders", "customers"):
        assert cost_cmd.run(cost_args(replication=block, table=table, filter_pass_share=0.5)) == 0
        documents[table] = json.loads(capsys.readouterr().out)
    assert documents["orders"] != documents["customers"]


def test_per_invocation_figures_grow_past_the_largest_measured_batch() -> None:
    # Given figures measured at 1 and 50 records per invocation, and 100-record invocations
    figures = replace(FIGURES, high=replace(FIGURES.high, records_per_invocation=50.0))
    est = estimate(mesh(), Workload(100.0), figures, DEFAULT_PRICES)
    duration = next(line for line in est.product if line.name == "Lambda duration")
    # Then the duration per invocation follows the measured slope: 60 + (150 - 60) x 99/49 ms
    per_invocation_ms = 60 + (150 - 60) * 99 / 49
    assert duration.quantity == pytest.approx(est.source_writes_per_month / 100 * per_invocation_ms / 1000)


def test_the_bench_prices_its_table_rows_as_ddbrep_cost_prices_the_same_cdk_json() -> None:
    from ddbrep.bench.cost import cost_table, table_deployment

    # Given cdk.json's shipped deployment (a 3-region mesh, window 0) and a one-way one
    shipped = json.loads((cost.REPO_ROOT / "cdk.json").read_text())["context"]["replication"]
    one_way = {
        "topology": "one-way",
        "source": "us-east-1",
        "replicas": ["eu-west-1", "ap-southeast-2"],
        "table": shipped["table"],
    }
    # Then the bench's rows are those deployments, with the app's defaults
    assert table_deployment(3, 0) == deployment_from_config(load_config(shipped), "arm64")
    assert table_deployment(3, 0, one_way=True) == deployment_from_config(load_config(one_way), "arm64")
    # And each row is the model's estimate for it, from the checked-in figures
    figures = cost.load_figures(cost.FIGURES_PATH)
    rows = {(r["traffic"], r["deployment"]): r for r in cost_table(figures, DEFAULT_PRICES)}
    assert len(rows) == 12
    low = estimate(table_deployment(3, 0), Workload(1.0), figures, DEFAULT_PRICES)
    assert rows["low", "mesh 3"]["ratio"] == pytest.approx(low.ratio)
    assert rows["low", "mesh 3"]["product_usd_per_million"] == pytest.approx(low.per_million(low.product_usd))
    # coalescing makes hot keys cheaper than global tables at full batches, never at one record per call
    assert rows["high", "mesh 3, hot keys 50 %"]["ratio"] < 1 < rows["low", "mesh 3, hot keys 50 %"]["ratio"]


def test_the_bench_table_leaves_out_the_rows_whose_scenario_it_did_not_measure() -> None:
    from ddbrep.bench.cost import cost_table

    figures = cost.load_figures(cost.FIGURES_PATH)
    rows = cost_table(figures, DEFAULT_PRICES, hot_keys=False, partial=False)  # bench cost --quick
    assert {r["deployment"] for r in rows} == {"mesh 2", "mesh 3", "mesh 5", "one-way 1 -> 2"}
