"""``cost``: the monthly cost of a deployment for a stated workload, line by line, next to global tables."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from ddbrep.cli.common import use_app_config
from ddbrep.tools import cost, prices


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cdk-json", type=Path, default=Path("cdk.json"), help="the deployment (default ./cdk.json)"
    )
    parser.add_argument(
        "--replication",
        default=None,
        help="a replication block as JSON text, in place of cdk.json's (as `cdk -c replication=...`)",
    )
    parser.add_argument(
        "--table",
        default=None,
        help="the table whose workload is given; required when the deployment has several tables "
        "(run once per table and add the results)",
    )
    parser.add_argument("--writes-per-second", type=float, required=True, help="per source region")
    parser.add_argument("--item-bytes", type=int, default=500)
    parser.add_argument("--hot-share", type=float, default=0.0, help="share of writes to hot keys (0-1)")
    parser.add_argument("--unstamped-share", type=float, default=0.0, help="share written without the helper")
    parser.add_argument("--filter-pass-share", type=float, default=1.0, help="share a partial filter passes")
    parser.add_argument(
        "--architecture", choices=("arm64", "x86_64"), default=None, help="default: the app's"
    )
    parser.add_argument(
        "--prices", type=Path, default=None, help="JSON file of prices overriding the defaults"
    )
    parser.add_argument(
        "--figures", type=Path, default=cost.FIGURES_PATH, help="measured figures (bench cost)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON")


def _table_view(config: Any, table: str | None) -> Any:
    """The workload is one table's: a deployment of several tables is costed one table at a time."""
    names = ", ".join(t.name for t in config.tables)
    if table is None:
        if len(config.tables) > 1:
            raise ValueError(
                f"the deployment replicates {len(config.tables)} tables ({names}) and the workload is one "
                "table's: pass --table <name> (run once per table and add the results)"
            )
        return config
    try:
        return config.for_table(config.table(table))
    except KeyError:
        raise ValueError(f"--table {table} is not a table of the deployment: pass one of {names}") from None


def register(subparsers: Any) -> None:
    """``ddbrep cost``."""
    parser = subparsers.add_parser(
        "cost",
        help="monthly cost for a stated workload, line by line, next to DynamoDB global tables",
        description=cost.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    use_app_config(Path(args.cdk_json), "cost")
    from stacks import defaults
    from stacks.config import ConfigError, load_config

    try:
        replication = getattr(args, "replication", None)
        if replication is None:
            replication = (
                json.loads(Path(args.cdk_json).read_text()).get("context", {}).get(defaults.CONTEXT_KEY)
            )
        config = _table_view(load_config(replication), getattr(args, "table", None))
        deployment = cost.deployment_from_config(config, args.architecture or defaults.FUNCTION_ARCHITECTURE)
        workload = cost.Workload(
            args.writes_per_second,
            args.item_bytes,
            args.hot_share,
            args.unstamped_share,
            args.filter_pass_share,
        )
        result = cost.estimate(
            deployment, workload, cost.load_figures(args.figures), prices.load_prices(args.prices)
        )
    except (OSError, ValueError, ConfigError, prices.PricesError, cost.CostInputError) as err:
        print(f"error: {err}")
        return 2
    print(json.dumps(result.as_dict(), indent=2) if args.json else cost.format_estimate(result))
    return 0
