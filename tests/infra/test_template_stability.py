"""A deployment of one table synthesizes the templates it did before `tables` existed (the release
before issue #12), byte for byte but for the function code's asset hash: an upgrade replaces nothing.

Each digest is SHA-256 over the template as sorted JSON, with the S3 key of every code asset (a hash of
the code, which changes with any code change and only updates the functions in place) written as
``<asset>``. A failure means the one-table templates changed: every live deployment would see that
change on its next deploy. If it is intended (and replaces no retained table or bucket), write the new
digests here, and say in the change why existing deployments may take it.

Changed on purpose since that release (each an in-place update, no replacement):
- every function's LoggingConfig (JSON log format, system log level WARN: stacks/runtime.py), which
  stops Lambda's billed START / END / REPORT lines; the EMF documents are printed as before.
- the dashboard (in its region's stack): the writes applied per pair are the SampleCount of
  ReplicationLatency, since RecordsReplicated is no longer emitted (replicator/core/metrics_names.py).
- one new alarm per pair in each source region's stack, the handoffs waiting for a replay
  (stacks/monitoring.py ``_waiting_alarm``): the queue's age alarm cannot tell an outage, since SQS
  leaves a message received three times out of ApproximateAgeOfOldestMessage. Adding an alarm
  replaces nothing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from tests.infra.conftest import Synthesized

pytestmark = pytest.mark.infra

DIGESTS = {
    "mesh3": {
        "us-east-1": "b56deb4ca2ab01ad4e364c10f75dc9410882b7ed27df2fcae66601c9cc1002ce",
        "eu-west-1": "d0eec67a4988d1bcdb80b071ec9c0bd580f79cc56d49deab8cdbc00fcad95475",
        "ap-southeast-2": "684f03507232c00e939604afe7dcb953ae88d136d1e23b24120295dedfcc8a74",
    },
    "mesh2": {
        "us-west-2": "f4bd3bc44e21f5623ad4ccd515ebdc5e922d51ab7068b3ff264d8ea98b4082d3",
        "eu-west-1": "e375f2a94fb0cba497ecc6f7563e0ecfc1750f0637bfb306b94b4d822fd63483",
    },
    "one_way": {
        "us-east-1": "cab71ecd6e7e8fa726ea4dcbc549f7e1bc760e592e8f2b221fa4162599b5e814",
        "eu-central-1": "2279f85c792c951c1c9bd982d7bf3c60fd68c286757170d2a8e99c63438fa486",
        "ap-northeast-1": "2676acee2a3f88531b0e5ba2b57a8269bb533e5f5b085c1eb69ce55e17c939c3",
    },
}


def without_code_hashes(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: "<asset>"
            if key == "S3Key" and isinstance(item, str) and item.endswith(".zip")
            else without_code_hashes(item)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [without_code_hashes(item) for item in value]
    return value


def digest(template: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(without_code_hashes(template), sort_keys=True).encode()).hexdigest()


@pytest.mark.parametrize("fixture", sorted(DIGESTS))
def test_one_table_templates_are_those_of_the_release_before_tables(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    synth: Synthesized = request.getfixturevalue(fixture)
    assert {region: digest(template) for region, template in synth.templates.items()} == DIGESTS[fixture]
