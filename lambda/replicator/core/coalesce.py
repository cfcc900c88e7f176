"""Coalescing a batch per key to the greatest version (docs/DESIGN.md, The replicator function)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from replicator.core.classify import Replicate
from replicator.core.records import key_id


@dataclass
class KeyChange:
    """The change to send for one key, and what the batch must know to report its failure."""

    change: Replicate
    earliest_sequence_number: str
    winning_sequence_number: str
    sequence_numbers: list[str] = field(default_factory=list)


def coalesce(changes: Iterable[tuple[str, Replicate]]) -> dict[str, KeyChange]:
    """Keep, per key, the change with the greatest version.

    ``changes`` are ``(sequence_number, change)`` pairs in stream order. Each key remembers its earliest
    sequence number (Lambda resumes from the lowest reported failure, so a failed key reports that one).
    """
    by_key: dict[str, KeyChange] = {}
    for sequence_number, change in changes:
        kid = key_id(change.keys)
        current = by_key.get(kid)
        if current is None:
            by_key[kid] = KeyChange(change, sequence_number, sequence_number, [sequence_number])
            continue
        current.sequence_numbers.append(sequence_number)
        if int(sequence_number) < int(current.earliest_sequence_number):
            current.earliest_sequence_number = sequence_number
        if change.version > current.change.version:
            current.change = change
            current.winning_sequence_number = sequence_number
    return by_key
