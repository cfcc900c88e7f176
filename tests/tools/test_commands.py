"""The operator commands end to end: flags, exit codes, JSON output, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ddbrep.cli import main
from ddbrep.tools.aws import Connection
from tests.tools.conftest import MakeTable, put_items, scan_all, stamped

pytestmark = pytest.mark.local

A, B = "us-east-1", "eu-west-1"


def flags(endpoints: dict[str, str]) -> list[str]:
    return [arg for region, url in endpoints.items() for arg in ("--endpoint", f"{region}={url}")]


def test_backfill_then_verify_from_the_command_line(
    conn: Connection, make_table: MakeTable, endpoints: dict[str, str], tmp_path: Path, capsys
):
    # Given a source with items and an empty replica of the same name
    name = make_table(A)
    make_table(B, name=name)
    put_items(conn, A, name, [stamped(f"k{i}", i, A, body="x") for i in range(25)])

    # When verify runs first, the tables differ: exit code 1, and the JSON says what is missing
    assert main(["verify", "--table", name, "--source", A, "--target", B, "--json", *flags(endpoints)]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["counts"] == {"missing": 25, "extra": 0, "different": 0}

    # When the backfill runs, then verify finds the tables equal: exit code 0
    code = main(
        [
            "backfill",
            "--source",
            A,
            "--table",
            name,
            "--target",
            B,
            "--segments",
            "3",
            "--json",
            "--checkpoint",
            str(tmp_path / "cp.json"),
            *flags(endpoints),
        ]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["totals"]["written"] == 25
    assert main(["verify", "--table", name, "--source", A, "--target", B, *flags(endpoints)]) == 0
    assert "matching" in capsys.readouterr().out


def test_verify_repair_from_the_command_line(
    conn: Connection, make_table: MakeTable, endpoints: dict[str, str], capsys
):
    name = make_table(A)
    make_table(B, name=name)
    put_items(conn, B, name, [stamped("only-b", 5, B, body="b")])
    code = main(
        ["verify", "--table", name, "--source", A, "--target", B, "--repair", "--json", *flags(endpoints)]
    )
    assert code == 0
    assert json.loads(capsys.readouterr().out)["repairs"] == {"applied": 1, f"applied:{A}": 1}
    assert set(scan_all(conn, A, name)) == {"only-b"}


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (
            ["verify", "--table", "absent", "--source", A, "--target", B],
            "table absent not found in us-east-1",
        ),
        (
            ["backfill", "--table", "absent", "--source", A, "--target", B],
            "table absent not found in us-east-1",
        ),
        (["backfill", "--table", "t", "--source", A, "--target", B, "--endpoint", "nonsense"], "REGION=URL"),
    ],
)
def test_errors_say_what_to_fix_and_exit_2(
    endpoints: dict[str, str], capsys, command: list[str], message: str
):
    assert main([*command, *flags(endpoints)]) == 2
    assert message in capsys.readouterr().err


def test_key_schema_mismatch_exits_2(make_table: MakeTable, endpoints: dict[str, str], capsys):
    name = make_table(A)
    make_table(B, name=name, keys=(("pk", "S"), ("sk", "S")))
    assert main(["verify", "--table", name, "--source", A, "--target", B, *flags(endpoints)]) == 2
    assert "key schema differs" in capsys.readouterr().err


def test_redrive_from_an_environment_file(
    conn: Connection, make_table: MakeTable, endpoints: dict[str, str], tmp_path: Path, capsys
):
    # Given a replicator environment whose dead-letter store holds one replayable record
    source, target = make_table(A), make_table(B)
    bucket = "dlq-cli"
    conn.client("s3", A).create_bucket(Bucket=bucket)
    item = stamped("k", 7, A, body="v")
    record = {
        "eventName": "INSERT",
        "dynamodb": {
            "Keys": {"pk": item["pk"]},
            "NewImage": item,
            "SequenceNumber": "42",
            "ApproximateCreationDateTime": 1_700_000_000,
        },
    }
    conn.client("s3", A).put_object(
        Bucket=bucket,
        Key=f"dead-letters/{A}/2025/01/01/42.json",
        Body=json.dumps({"reason": "local_write_rejected", "record": record}).encode(),
    )
    env = {
        "REP_LOCAL_REGION": A,
        "REP_TOPOLOGY": "mesh",
        "REP_SOURCE_TABLE": source,
        "REP_TARGETS": json.dumps([{"region": B, "table": target}]),
        "REP_DEAD_LETTER_BUCKET": bucket,
    }
    env_file = tmp_path / "env.json"
    env_file.write_text(json.dumps(env))

    # When it is redriven from the command line
    code = main(["redrive", "--env-file", str(env_file), "--json", *flags(endpoints)])

    # Then the record is applied and its entry gone
    assert code == 0
    assert json.loads(capsys.readouterr().out)["dead_letters"]["counts"]["applied"] == 1
    assert "k" in scan_all(conn, B, target)
    assert "Contents" not in conn.client("s3", A).list_objects_v2(Bucket=bucket)


def test_the_main_cli_offers_the_operator_commands():
    from ddbrep.cli import build_parser

    parser = build_parser()
    for command in (
        ["backfill", "--source", A, "--table", "t", "--target", B],
        ["redrive", "--env-file", "e"],
    ):
        assert parser.parse_args(command).func is not None
    assert parser.parse_args(["verify", "--table", "t", "--source", A, "--target", B]).func is not None
    assert parser.parse_args(["bench", "tools", "--items", "10"]).items == 10


def test_local_up_prints_the_gateway_endpoints_and_how_to_reach_the_functions() -> None:
    from pathlib import Path

    from ddbrep.cli.local_cmd import startup_lines

    # Given two running regions behind their gateways
    endpoints = {"us-east-1": "http://127.0.0.1:4001", "eu-west-1": "http://127.0.0.1:4002"}
    functions = {
        "us-east-1": ["orders-replicator", "orders-drain-eu-west-1"],
        "eu-west-1": ["orders-replicator"],
    }
    # When local up describes them
    lines = startup_lines(endpoints, functions, Path("out/local"), 70.0)
    # Then it names only the endpoints to use, the flags for the tools, and the redrive command
    assert (
        lines[1] == "  us-east-1  http://127.0.0.1:4001  functions: orders-replicator, orders-drain-eu-west-1"
    )
    assert lines[3] == (
        "Operator tools (backfill, verify): --endpoint us-east-1=http://127.0.0.1:4001 "
        "--endpoint eu-west-1=http://127.0.0.1:4002"
    )
    assert lines[4] == (
        "Function environments: out/local/functions/<region>/<function>.json; redrive: "
        "python -m ddbrep redrive --function orders-replicator --region us-east-1 --local-state out/local"
    )
    assert not any("engine" in line for line in lines)


def test_local_up_prints_each_state_machine_with_the_command_that_starts_it() -> None:
    from pathlib import Path

    from ddbrep.cli.local_cmd import startup_lines

    arn = "arn:aws:states:us-east-1:111111111111:stateMachine:orders-backfill"
    endpoints = {"us-east-1": "http://127.0.0.1:4001", "eu-west-1": "http://127.0.0.1:4002"}
    functions = {"us-east-1": ["orders-replicator", "orders-backfill"], "eu-west-1": ["orders-replicator"]}
    lines = startup_lines(endpoints, functions, Path("out/local"), 70.0, {"us-east-1": [arn]})
    assert (
        f"State machine {arn}: python -m ddbrep local states --log-dir out/local start-execution "
        f"--state-machine-arn {arn} --input '{{}}' (docs/LOCAL.md)"
    ) in lines
    assert not any("State machine" in line for line in startup_lines(endpoints, functions, Path("x"), 70.0))
