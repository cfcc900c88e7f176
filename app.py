#!/usr/bin/env python3
"""cdk.json context -> validated config -> one stack per region (plus cdk-nag). Nothing else."""

from __future__ import annotations

import sys
from pathlib import Path

from aws_cdk import App

# The dashboard imports the metric names the function emits from the Lambda asset root (lambda/), which is
# not a package (`lambda` is a keyword): put it on the path so `cdk synth` works without PYTHONPATH.
sys.path.insert(0, str(Path(__file__).resolve().parent / "lambda"))

from stacks import defaults
from stacks.app_builder import build_app
from stacks.config import ConfigError


def main() -> None:
    app = App()
    try:
        build_app(
            app,
            replication=app.node.try_get_context(defaults.CONTEXT_KEY),
            account=app.node.try_get_context("account"),
        )
    except ConfigError as err:
        # A configuration mistake is the user's to fix: the message, not a traceback.
        sys.exit(f"Invalid cdk.json context: {err}")
    app.synth()


if __name__ == "__main__":
    main()
