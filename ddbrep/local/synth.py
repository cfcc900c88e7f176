"""Synthesize the CDK app into a cloud assembly, cached by the content of everything it depends on.

The app runs as `cdk synth` would run it (`cdk.json` "app" command, context from cdk.json plus
overrides, passed in CDK_CONTEXT_JSON, output in CDK_OUTDIR), without the Node CLI's own start-up.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ddbrep.install import Unavailable

REPO_ROOT = Path(__file__).resolve().parents[2]
INPUTS = ("app.py", "cdk.json", "stacks", "lambda")
CACHE_DIR = REPO_ROOT / "cdk.out" / "local"


class SynthError(RuntimeError):
    """The CDK app failed to synthesize."""


def _fingerprint(root: Path, context: Mapping[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(context, sort_keys=True).encode())
    for name in INPUTS:
        path = root / name
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts or file.suffix == ".pyc" or not file.exists():
                continue
            digest.update(str(file.relative_to(root)).encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def app_context(root: Path = REPO_ROOT, replication: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """cdk.json's context, with the ``replication`` block replaced when one is given.

    The app is the checkout's: an installed ddbrep (the distribution holds no app.py, cdk.json or
    stacks/) raises Unavailable, saying where to run instead.
    """
    if not all((root / name).exists() for name in INPUTS):
        raise Unavailable(
            f"the CDK app (app.py, cdk.json, stacks/, lambda/) is not in {root}: this ddbrep is installed "
            "without it. Run the command in the checkout (.venv/bin/python -m ddbrep ...), or synthesize "
            "there (make synth) and pass the assembly: ddbrep local up --assembly <checkout>/cdk.out"
        )
    context = dict(json.loads((root / "cdk.json").read_text()).get("context", {}))
    if replication is not None:
        context["replication"] = dict(replication)
    return context


def synthesize(
    replication: Mapping[str, Any] | None = None,
    *,
    root: Path = REPO_ROOT,
    cache_dir: Path = CACHE_DIR,
    timeout: float = 300.0,
) -> Path:
    """The cloud assembly directory for cdk.json (or ``replication`` instead of its block)."""
    context = app_context(root, replication)
    out_dir = cache_dir / _fingerprint(root, context)
    if (out_dir / "manifest.json").exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "CDK_OUTDIR": str(out_dir),
        # as the Makefile sets it: the app imports the function's constants from the Lambda asset
        "PYTHONPATH": os.pathsep.join([str(root / "lambda"), str(root), os.environ.get("PYTHONPATH", "")]),
        "CDK_CONTEXT_JSON": json.dumps(context),
        "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
        "CDK_DISABLE_CLI_TELEMETRY": "true",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    result = subprocess.run(
        [sys.executable, "app.py"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0 or not (out_dir / "manifest.json").exists():
        (out_dir / "manifest.json").unlink(missing_ok=True)
        output = (result.stderr + result.stdout)[-4000:]
        raise SynthError(f"cdk synth failed (exit {result.returncode}):\n{output}")
    return out_dir
