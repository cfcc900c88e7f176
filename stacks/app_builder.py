"""Builds the whole deployment into an App; shared by app.py and the infra tests (same code path)."""

from __future__ import annotations

from typing import Any

from aws_cdk import App

from stacks.config import ReplicationConfig, load_config
from stacks.nag import add_nag_checks
from stacks.region_stack import RegionStack


def build_app(
    app: App, *, replication: Any, account: Any = None
) -> tuple[ReplicationConfig, list[RegionStack]]:
    config = load_config(replication, account)
    stacks = [RegionStack(app, config=config, plan=plan) for plan in config.regions]
    add_nag_checks(app, stacks)
    return config, stacks
