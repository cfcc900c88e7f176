"""The README's Python examples run as written (against moto), and the commands it shows exist."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_client_helper_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "the README has no Python example"
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(var, "testing")
    with mock_aws():
        boto3.client("dynamodb", region_name="eu-west-1").create_table(
            TableName="orders",
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        for block in blocks:
            exec(compile(block, "README.md", "exec"), {})


@pytest.mark.parametrize(
    "command", sorted(set(re.findall(r"`python -m ddbrep ([a-z][a-z-]*(?: [a-z][a-z-]*)?)", README)))
)
def test_each_cli_command_in_the_readme_exists(command: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ddbrep", *command.split(), "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
