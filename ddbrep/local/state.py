"""What ``local up`` leaves on disk for the operator tools: each function's configuration.

In AWS, ``redrive --function NAME --region R`` reads the deployed function's environment with
``lambda:GetFunctionConfiguration``. Locally there is no Lambda API: ``local up`` writes the same
document (``FunctionName``, ``Environment.Variables``) per function under its log directory, and
``redrive --local-state <log dir>`` reads it from there. The environment's ``REP_ENDPOINT_URLS`` are
the function's own view of the regions (its gateway, and the links with their faults to the others).
``endpoints.json`` holds each region's gateway, the endpoint an operator uses (``add-region
--local-state`` reads it).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

FUNCTIONS_DIR = "functions"
ENDPOINTS_FILE = "endpoints.json"
_CREDENTIAL_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def function_config_path(state_dir: Path, region: str, function: str) -> Path:
    return state_dir / FUNCTIONS_DIR / region / f"{function}.json"


def write_function_config(
    state_dir: Path, region: str, function: str, environment: Mapping[str, str]
) -> Path:
    """Write what GetFunctionConfiguration would answer (without the placeholder credentials)."""
    path = function_config_path(state_dir, region, function)
    path.parent.mkdir(parents=True, exist_ok=True)
    variables = {k: v for k, v in environment.items() if k not in _CREDENTIAL_VARIABLES}
    document = {"FunctionName": function, "Region": region, "Environment": {"Variables": variables}}
    path.write_text(json.dumps(document, indent=2, sort_keys=True))
    return path


def read_function_config(state_dir: Path, region: str, function: str) -> dict[str, Any]:
    """The document ``local up`` wrote; FileNotFoundError naming the functions it did write."""
    name = function.rsplit(":function:", 1)[-1].split(":", 1)[0]  # a name or an ARN
    path = function_config_path(state_dir, region, name)
    if not path.is_file():
        written = sorted(f"{p.parent.name}/{p.stem}" for p in (state_dir / FUNCTIONS_DIR).glob("*/*.json"))
        known = ", ".join(written) if written else "none: is this the --log-dir of a running `local up`?"
        raise FileNotFoundError(f"no function {name} in {region} under {state_dir} (there: {known})")
    document: dict[str, Any] = json.loads(path.read_text())
    return document


def write_endpoints(state_dir: Path, endpoints: Mapping[str, str]) -> Path:
    """The region endpoints (gateways) a user of ``local up`` should use, by region."""
    path = state_dir / ENDPOINTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dict(endpoints), indent=2, sort_keys=True))
    return path


def read_endpoints(state_dir: Path) -> dict[str, str]:
    """The endpoints ``local up`` wrote (updated by each local deploy); FileNotFoundError saying why."""
    path = state_dir / ENDPOINTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no {path}: is {state_dir} the --log-dir of a running `local up`?")
    endpoints: dict[str, str] = json.loads(path.read_text())
    return endpoints
