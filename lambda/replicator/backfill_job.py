"""The deployed backfill job's function: one segment, pages until near the time limit, then hand over.

The state machine (stacks/backfill_job.py) runs one loop per segment: it invokes this function with
the segment's position, and invokes it again with the position it returns until ``done``. The work is
the same segment worker the CLI runs (replicator.backfill_segments).
"""

from __future__ import annotations

from typing import Any

from replicator.adapters import AwsPorts
from replicator.backfill_segments import BackfillJobSettings, key_names_of, run_job_step

settings = BackfillJobSettings.from_env()
ports = AwsPorts(settings.ports_settings())
_key_names: list[str] = []


def key_names() -> list[str]:
    if not _key_names:
        table = ports.dynamodb(settings.local_region).describe_table(TableName=settings.source_table)
        _key_names.extend(key_names_of(table["Table"]))
    return _key_names


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_job_step(event, context.get_remaining_time_in_millis, settings, ports, key_names())
