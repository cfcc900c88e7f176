"""Command line, client helper and local multi-region runtime of the DynamoDB replicator.

The replication protocol lives in the Lambda asset (``lambda/replicator``), which is not an
installable package (``lambda`` is a Python keyword): it is put on the import path here so the
CLI tools run exactly the code that is deployed.
"""

import sys
from pathlib import Path

LAMBDA_ROOT = Path(__file__).resolve().parent.parent / "lambda"
if str(LAMBDA_ROOT) not in sys.path:
    sys.path.insert(0, str(LAMBDA_ROOT))
