"""The distribution: the wheel holds ddbrep and replicator (and their data), not the CDK app or the tests;
installed with its one dependency (boto3) into a fresh venv, outside the checkout, the ``ddbrep`` script
and the client helper work, and a command that needs an extra or the checkout says what instead.

Needs the package index: the build fetches setuptools (pyproject.toml [build-system]; the dev venv's is
older and has no ``wheel``), and the install fetches boto3.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

import pytest

from tests.infra.conftest import ROOT

pytestmark = pytest.mark.infra

# The build runs on a copy of the checkout (so the checkout gets no build/ or *.egg-info), without what
# the checkout has installed or made; stacks/ and tests/ are copied: the wheel must leave them out.
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    "node_modules",
    "cdk.out",
    "out",
    "build",
    "dist",
    "*.egg-info",
    "__pycache__",
    ".*_cache",
    ".hypothesis",
    ".ddbrep",
)
EXTRA_MODULES = ("moto", "rich", "matplotlib", "aws_lambda_powertools")
# Run in the venv with the extras' modules as arguments: the helper and the protocol core import with boto3
# alone, from the installed packages.
HELPER_SNIPPET = """
import importlib.util, json, sys
import boto3
from ddbrep.client import ReplicatedTable
import replicator.core.metadata

client = boto3.client("dynamodb", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="x")
ReplicatedTable(client, "orders", "eu-west-1")
extras = sys.argv[1:]
print(json.dumps({
    "imported": [name for name in extras if name in sys.modules],
    "installed": [name for name in (*extras, "stacks") if importlib.util.find_spec(name) is not None],
    "replicator": replicator.core.metadata.__file__,
}))
"""


def _environment() -> dict[str, str]:
    """This process's environment without what points into the checkout or its venv."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}


def _run(command: Sequence[str | Path], cwd: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(part) for part in command],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = tmp_path_factory.mktemp("source") / "ddb-replicator"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES, symlinks=True)
    out = tmp_path_factory.mktemp("wheel")
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", out, source], cwd=out)
    assert built.returncode == 0, built.stdout + built.stderr
    (found,) = out.glob("ddb_replicator-0.1.0-*.whl")
    return found


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel and its dependencies, nothing else."""
    path = tmp_path_factory.mktemp("venv") / "env"
    created = _run([sys.executable, "-m", "venv", path], cwd=path.parent)
    assert created.returncode == 0, created.stderr
    installed = _run([path / "bin" / "python", "-m", "pip", "install", "-q", wheel], cwd=path.parent)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return path


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A working directory outside the checkout."""
    assert ROOT not in tmp_path.parents
    return tmp_path


def test_the_wheel_holds_both_packages_and_their_data_but_not_the_app_or_the_tests(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        metadata = archive.read("ddb_replicator-0.1.0.dist-info/METADATA").decode()
        entry_points = archive.read("ddb_replicator-0.1.0.dist-info/entry_points.txt").decode()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"ddbrep", "replicator", "ddb_replicator-0.1.0.dist-info"}
    assert {"ddbrep/bench/cost_figures.json", "ddbrep/client.py", "replicator/handler.py"} <= set(names)
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    assert "ddbrep = ddbrep.cli:main" in entry_points
    base = [
        line for line in metadata.splitlines() if line.startswith("Requires-Dist:") and "extra ==" not in line
    ]
    assert base == ["Requires-Dist: boto3>=1.34"]


def test_the_script_lists_the_commands_and_their_help_works(venv: Path, outside: Path) -> None:
    result = _run([venv / "bin" / "ddbrep", "--help"], cwd=outside)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: ddbrep ")
    for command in ("backfill", "verify", "redrive", "cost", "local"):
        assert command in result.stdout
    result = _run([venv / "bin" / "ddbrep", "backfill", "--help"], cwd=outside)
    assert result.returncode == 0, result.stderr
    assert "--checkpoint" in result.stdout


def test_the_helper_imports_with_boto3_alone(venv: Path, outside: Path) -> None:
    result = _run([venv / "bin" / "python", "-c", HELPER_SNIPPET, *EXTRA_MODULES], cwd=outside)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["imported"] == [] and found["installed"] == []
    assert Path(found["replicator"]).is_relative_to(venv)


def test_a_command_that_needs_an_extra_names_it(venv: Path, outside: Path) -> None:
    result = _run([venv / "bin" / "ddbrep", "local", "up"], cwd=outside)
    assert result.returncode == 2
    assert "the local runtime needs the 'local' extra" in result.stderr
    assert "pip install 'ddb-replicator[local]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_cost_reads_the_app_config_of_the_checkout_it_is_given(venv: Path, outside: Path) -> None:
    cost = [venv / "bin" / "ddbrep", "cost", "--writes-per-second", "10", "--json"]
    result = _run(cost, cwd=outside)
    assert result.returncode == 2
    assert "run it in the checkout, or pass --cdk-json" in result.stderr
    result = _run([*cost, "--cdk-json", ROOT / "cdk.json"], cwd=outside)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["product_usd_per_month"] > 0
