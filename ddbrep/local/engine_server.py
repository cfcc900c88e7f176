"""The engine of one simulated region: moto's server, with its stream sequence race fixed.

moto's ``StreamShard.add`` numbers a stream record ``len(items) + starting_sequence_number`` and then
appends it, with no lock, while the server handles requests on many threads. Two writes to one table
at the same moment can take the same sequence number (measured: one duplicate in 1,200 writes from 8
threads). DynamoDB never does that, and a stream reader positioned after the first of the two is
handed the second, with the same number, on every read (an AFTER_SEQUENCE_NUMBER iterator starts at
"number + 1" by index): the local stream mapping re-read it for ever and never drained. Each region's
server therefore runs here, with the numbering and the append made one step under a lock.

    python -m ddbrep.local.engine_server -H 127.0.0.1 -p PORT     (moto.server's arguments)
"""

from __future__ import annotations

import sys
import threading
from typing import Any


def serialize_stream_appends() -> None:
    """Make ``StreamShard.add`` (number, append, hand to moto's own Lambda mappings) atomic."""
    from moto.dynamodb.models.table import StreamShard

    original = StreamShard.add
    if getattr(original, "serialized", False):
        return
    lock = threading.Lock()

    def add(self: Any, old: Any, new: Any) -> None:
        with lock:
            original(self, old, new)

    add.serialized = True  # type: ignore[attr-defined]
    StreamShard.add = add  # type: ignore[method-assign]


def main(argv: list[str]) -> None:
    serialize_stream_appends()
    from moto.server import main as moto_main

    moto_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
