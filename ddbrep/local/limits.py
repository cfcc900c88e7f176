"""The service limits the stand-ins enforce where the local engine does not, and how AWS measures them.

Pure functions: no I/O. docs/LOCAL.md ("What the stand-in enforces") lists each limit with its test.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

# DynamoDB: an item is at most 400 KB, attribute names included (KB = 1024 bytes: 409,600).
MAX_ITEM_BYTES = 400 * 1024
ITEM_TOO_LARGE_MESSAGE = "Item size has exceeded the maximum allowed size"
# Lambda: a synchronous invocation's request payload is at most 6 MB ("Request must be smaller than
# 6291456 bytes for the InvokeFunction operation").
MAX_SYNC_PAYLOAD_BYTES = 6 * 1024 * 1024
# SQS: 256 KiB per message in most tooling and in AWS until 2025; AWS accepts 1 MiB since then.
SQS_MESSAGE_BYTES_STRICT = 256 * 1024
SQS_MESSAGE_BYTES_AWS = 1024 * 1024

_LIST_OR_MAP_OVERHEAD = 3  # bytes of a List or Map, whatever its content
_ELEMENT_OVERHEAD = 1  # bytes per element of a List or Map


def item_size(item: Mapping[str, Mapping[str, Any]]) -> int:
    """The size DynamoDB charges an item: UTF-8 names plus value sizes (Developer Guide, "Item sizes").

    Accepts both spellings of binary values: base64 text (the wire, event form) and bytes (SDK form);
    either way the raw byte length counts.
    """
    return sum(_utf8(name) + value_size(value) for name, value in item.items())


def value_size(value: Mapping[str, Any]) -> int:
    (tag, inner), *_ = value.items()
    if tag == "S":
        return _utf8(inner)
    if tag == "N":
        return _number_size(inner)
    if tag == "B":
        return _binary_size(inner)
    if tag in ("BOOL", "NULL"):
        return 1
    if tag == "SS":
        return sum(_utf8(member) for member in inner)
    if tag == "NS":
        return sum(_number_size(member) for member in inner)
    if tag == "BS":
        return sum(_binary_size(member) for member in inner)
    if tag == "L":
        return _LIST_OR_MAP_OVERHEAD + sum(_ELEMENT_OVERHEAD + value_size(member) for member in inner)
    if tag == "M":
        return _LIST_OR_MAP_OVERHEAD + sum(
            _ELEMENT_OVERHEAD + _utf8(name) + value_size(member) for name, member in inner.items()
        )
    raise ValueError(f"unknown DynamoDB type tag {tag!r}")


def _utf8(text: Any) -> int:
    return len(str(text).encode("utf-8"))


def _number_size(text: Any) -> int:
    """1 byte per two significant digits, plus 1 (leading and trailing zeroes are not stored)."""
    mantissa = str(text).strip().lstrip("+-").split("e")[0].split("E")[0]
    digits = mantissa.replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def _binary_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(base64.b64decode(value))
