"""The JSON file a resumable tool keeps for one run (backfill checkpoints, add-region state).

A file carries the run's identity (what was asked: tables, regions, segments...); a re-run with the
same identity resumes from it, another run's file is refused rather than resumed by mistake. Writes
replace the file atomically, so an interrupted tool never leaves half a file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ddbrep.tools.aws import ToolError


def read_run_file(
    path: Path, identity: Mapping[str, Any], what: str, other_run_fix: str
) -> dict[str, Any] | None:
    """The document at ``path`` when it is this run's; None when there is none.

    Raises ToolError naming ``what`` the file is when it is unreadable or belongs to another run
    (``other_run_fix`` says what to do then).
    """
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ToolError(f"{what} {path} is unreadable ({err}); pass --restart") from None
    if doc.get("identity") != dict(identity):
        raise ToolError(f"{what} {path} belongs to another run ({doc.get('identity')}); {other_run_fix}")
    return dict(doc)


def write_run_file(path: Path, doc: Mapping[str, Any]) -> None:
    """Replace the file at ``path`` with ``doc`` in one step."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=str))
    os.replace(tmp, path)
