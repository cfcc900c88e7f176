#!/usr/bin/env python3
"""cdk.json context -> validated config -> one stack per region (plus cdk-nag). Nothing else."""

from __future__ import annotations

from aws_cdk import App

from stacks import defaults
from stacks.app_builder import build_app


def main() -> None:
    app = App()
    build_app(
        app,
        replication=app.node.try_get_context(defaults.CONTEXT_KEY),
        account=app.node.try_get_context("account"),
    )
    app.synth()


if __name__ == "__main__":
    main()
