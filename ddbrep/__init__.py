"""Command line, client helper and local multi-region runtime of the DynamoDB replicator.

The replication protocol lives in the Lambda asset (``lambda/replicator``). In the checkout ``lambda``
is not a package (it is a Python keyword): its directory is put on the import path here so the CLI
tools run exactly the code that is deployed. The distribution (pyproject.toml) installs the same
package, ``replicator``, beside this one.
"""

import sys
from pathlib import Path

LAMBDA_ROOT = Path(__file__).resolve().parent.parent / "lambda"
if LAMBDA_ROOT.is_dir() and str(LAMBDA_ROOT) not in sys.path:
    sys.path.insert(0, str(LAMBDA_ROOT))
