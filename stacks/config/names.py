"""Physical names: every name a region's stack gives its resources, computed once from the config."""

from __future__ import annotations

import hashlib
import re

from stacks import defaults


def slug(name: str) -> str:
    """A table name made safe for SQS, Lambda and SNS names (which refuse '.')."""
    return name.replace(".", "-")


def name_stem(deployment: str | None, table: str) -> str:
    """What every physical name of a region's stack starts with: ``[<deployment>-]<table>``.

    Without a deployment name the stem is the table's alone, as before the key existed: a deployment
    upgraded without setting one keeps every name (and CloudFormation replaces nothing)."""
    return f"{deployment}-{slug(table)}" if deployment else slug(table)


def stack_id(deployment: str | None, region: str) -> str:
    """``Replicator-[<deployment>-]<region>``; renaming a stack would orphan its retained table."""
    middle = f"{deployment}-" if deployment else ""
    return f"{defaults.STACK_ID_PREFIX}{middle}{region}"


def bounded(name: str, limit: int) -> str:
    """``name`` when it fits ``limit``; otherwise a stable truncation ending in a short hash."""
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: limit - 9]}-{digest}"


def bucket_name(deployment: str | None, table: str, account: str, region: str) -> str:
    """``[<deployment>-]<table>-replicator-<account>-<region>``, lowercased and within S3's rules (63
    chars, a-z0-9-). The hash of a long name is taken over the table name as given, as it always was."""
    named = f"{deployment}-{table}" if deployment else table
    suffix = f"-replicator-{account}-{region}"
    stem = re.sub(r"[^a-z0-9-]+", "-", named.lower()).strip("-") or "table"
    if len(stem) + len(suffix) > 63:
        digest = hashlib.sha256(named.encode()).hexdigest()[:6]
        stem = f"{stem[: 63 - len(suffix) - 7].rstrip('-')}-{digest}"
    return f"{stem}{suffix}"
