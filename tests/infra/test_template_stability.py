"""A deployment of one table synthesizes the templates it did before `tables` existed (the release
before issue #12), byte for byte but for the function code's asset hash: an upgrade replaces nothing.

Each digest is SHA-256 over the template as sorted JSON, with the S3 key of every code asset (a hash of
the code, which changes with any code change and only updates the functions in place) written as
``<asset>``. A failure means the one-table templates changed: every live deployment would see that
change on its next deploy. If it is intended (and replaces no retained table or bucket), write the new
digests here, and say in the change why existing deployments may take it.
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
        "us-east-1": "cd42a620a93a8e6f67ee21c25ad987458909a9a80e29f9ee10169f86919286ce",
        "eu-west-1": "46bc7e323352263942e62f83a255ab6293f46fb32446949f775242bd35053b7f",
        "ap-southeast-2": "e264478cb097ee54262ba0cc18c606ae279858ae9d3375129dea347499e1fb84",
    },
    "mesh2": {
        "us-west-2": "1e657bece7487e99787bc9d393638dfa420907dca00092ee905e9716ffd5c0b6",
        "eu-west-1": "6d417953fca35e84e8b2e48a5fa5de5b156c2f818853e93f09d24970df1619a2",
    },
    "one_way": {
        "us-east-1": "18709e770d39be8e276c263e5aa0f297b01e9ee109e4d915fb600ed26b49da2d",
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
