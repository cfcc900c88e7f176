"""Physical names: every name a region's stack gives its resources, computed once from the config."""

from __future__ import annotations

import hashlib
import re


def slug(name: str) -> str:
    """A table name made safe for SQS, Lambda and SNS names (which refuse '.')."""
    return name.replace(".", "-")


def bounded(name: str, limit: int) -> str:
    """``name`` when it fits ``limit``; otherwise a stable truncation ending in a short hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"


def bucket_name(table: str, account: str, region: str) -> str:
    """``<table>-replicator-<account>-<region>``, lowercased and within S3's rules (63 chars, a-z0-9-)."""
    suffix = f"-replicator-{account}-{region}"
    stem = re.sub(r"[^a-z0-9-]+", "-", table.lower()).strip("-") or "table"
    if len(stem) + len(suffix) > 63:
        digest = hashlib.sha256(table.encode()).hexdigest()[:6]
        stem = f"{stem[: 63 - len(suffix) - 7].rstrip('-')}-{digest}"
    return f"{stem}{suffix}"
