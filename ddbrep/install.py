"""What an install of ddb-replicator can run: its extras, checked before a command starts its work.

The distribution depends on boto3 alone: all that the client helper (``ddbrep.client``) and the operator
tools' JSON output need. A command that needs more calls ``require_extra`` first, and one that needs the
checkout (the CDK app: app.py, cdk.json, stacks/, which the distribution does not include) raises
``Unavailable`` too, so what is missing is a message saying what to install or where to run, not a
traceback (``ddbrep.cli.main`` prints it).
"""

from __future__ import annotations

import importlib.util

# pyproject.toml [project.optional-dependencies]: the top-level modules each extra installs.
EXTRAS: dict[str, tuple[str, ...]] = {
    "cli": ("rich",),
    "local": ("rich", "moto", "aws_lambda_powertools"),
    "demo": ("rich", "moto", "aws_lambda_powertools", "matplotlib"),
}


class Unavailable(RuntimeError):
    """A command needs what this install does not have: an extra, or the checkout."""


def require_extra(extra: str, what: str, instead: str = "") -> None:
    """Raise Unavailable naming the extra when one of its modules is not installed.

    ``what`` is the part of the command that needs it; ``instead`` a way to do without it, if any.
    """
    missing = [module for module in EXTRAS[extra] if importlib.util.find_spec(module) is None]
    if missing:
        alternative = f", or {instead}" if instead else ""
        raise Unavailable(
            f"{what} needs the '{extra}' extra ({', '.join(missing)} not installed): "
            f"pip install 'ddb-replicator[{extra}]'{alternative}"
        )
