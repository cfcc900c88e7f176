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
        "us-east-1": "7927932ba1a058cad8796bcc814cd7568665c07b2681cacf7a24e1c2557d2a92",
        "eu-west-1": "0069676d973549b493529edfdad6477cb46d6f11956960ca1f421dd0f0e3aeb8",
        "ap-southeast-2": "311ad9330d19e4618a1d2e9d11d1af40e18eae63cb49fd7691f69f53bcb17aa8",
    },
    "mesh2": {
        "us-west-2": "41458b0dc5827b028e2ee4ec8a932612a0389320902142512848aca31405e49d",
        "eu-west-1": "8fd57fbcee95f81f990ed5b60918765203660dfac51831ba8dc88da6c09bfe04",
    },
    "one_way": {
        "us-east-1": "6dfd982faf9600ad3d48e787408590d7413ed67693a5d18daeb47869ad4e2fb6",
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
