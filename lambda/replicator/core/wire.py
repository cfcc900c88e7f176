"""DynamoDB JSON as the protocol carries it, and its one crossing into and out of the SDK.

Two spellings of the same item exist:

- **event form** (what Lambda delivers, what the core decides on, what handoff messages, dead letters
  and checkpoints store): JSON-serializable DynamoDB JSON; ``B`` values and ``BS`` members are base64
  text, at any depth of ``M`` and ``L``;
- **SDK form** (what botocore takes and returns): the same, but binary values are ``bytes``.

Handing event-form text to boto3 would base64-encode it a second time: the replica would store the
base64 text as its bytes. So every item crosses between the two forms here, exactly once:
:func:`to_sdk` right before a boto3 write, :func:`from_sdk` right after a boto3 read. Everything in
between stays in event form (comparisons, keys, filters, serialization).

:func:`validate_item` says what is wrong with a hostile value before any decision is taken on it.
"""

from __future__ import annotations

import base64
import binascii
import decimal
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

WireItem = Mapping[str, Mapping[str, Any]]

TYPE_TAGS = ("S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS")
MAX_NUMBER_DIGITS = 38  # DynamoDB: up to 38 significant digits
MIN_EXPONENT, MAX_EXPONENT = -130, 125  # DynamoDB: magnitudes from 1E-130 to 9.99...E+125
MAX_DEPTH = 32  # DynamoDB: nested attributes up to 32 levels deep
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


class WireFormatError(ValueError):
    """An attribute value that is not valid DynamoDB JSON; the message names the attribute path."""


# --- crossing the SDK boundary --------------------------------------------------------------------


def to_sdk(item: WireItem) -> dict[str, Any]:
    """Event form -> SDK form: base64 text of B and BS members decoded to bytes, at any depth."""
    # A value tagged other than B, BS, M or L has no binary inside: value_to_sdk would return it as it
    # is, so it is not called for it (most values are S or N: the conversion is mostly a dict copy).
    return {
        name: value if _MAY_HOLD_BINARY.isdisjoint(value) else value_to_sdk(value)
        for name, value in item.items()
    }


_MAY_HOLD_BINARY = frozenset(("B", "BS", "M", "L"))  # type tags (a value's keys)


def from_sdk(item: WireItem) -> dict[str, Any]:
    """SDK form -> event form: bytes of B and BS members encoded as base64 text, at any depth."""
    return {name: value_from_sdk(value) for name, value in item.items()}


def value_to_sdk(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """One value in SDK form. A value without binary inside is returned as it is, not copied: botocore
    only reads what it is given."""
    tag, inner = next(iter(value.items()))
    if tag == "B":
        return {"B": _decode(inner)}
    if tag == "BS":
        return {"BS": [_decode(member) for member in inner]}
    if tag == "M":
        return {"M": to_sdk(inner)}
    if tag == "L":
        return {"L": [value_to_sdk(member) for member in inner]}
    return value


def value_from_sdk(value: Mapping[str, Any]) -> dict[str, Any]:
    tag, inner = next(iter(value.items()))
    if tag == "B":
        return {"B": _encode(inner)}
    if tag == "BS":
        return {"BS": [_encode(member) for member in inner]}
    if tag == "M":
        return {"M": from_sdk(inner)}
    if tag == "L":
        return {"L": [value_from_sdk(member) for member in inner]}
    return dict(value)


def _decode(text: Any) -> bytes:
    if isinstance(text, bytes | bytearray):
        raise WireFormatError(
            "binary value is already bytes: an SDK-form item reached an event-form boundary (use from_sdk)"
        )
    return base64.b64decode(text, validate=True)


def _encode(raw: Any) -> str:
    if isinstance(raw, str):
        raise WireFormatError(
            "binary value is text: an event-form item reached an SDK-form boundary (use to_sdk)"
        )
    return base64.b64encode(bytes(raw)).decode("ascii")


# --- size -------------------------------------------------------------------------------------------

MAX_ITEM_BYTES = 400 * 1024  # DynamoDB's item size limit, attribute names included (409,600 bytes)
_LIST_OR_MAP_OVERHEAD = 3  # bytes of a List or Map, whatever its content
_ELEMENT_OVERHEAD = 1  # bytes per element of a List or Map


def size_over_limit(item: WireItem, limit: int = MAX_ITEM_BYTES) -> int | None:
    """The item's size if it is over ``limit`` bytes, else None; cheap for the items that fit.

    ``ascii(item)``, the item's repr with non-ASCII characters escaped, is never shorter than its
    DynamoDB size: every name and value is quoted and tagged; non-ASCII text is escaped to at least
    its UTF-8 length (``\\xNN`` for 2 bytes, ``\\uNNNN`` for 3, ``\\UNNNNNNNN`` for 4); base64 text is
    longer than its bytes, and bytes (SDK form) are written one character or escape per byte; a number
    takes one byte per two digits. So an item whose ``ascii()`` fits is decided by one C-speed call
    (faster than ``json.dumps``, which bounds the size the same way); only the others are measured
    exactly.
    """
    if len(ascii(item)) <= limit:
        return None
    size = item_size_bytes(item)
    return size if size > limit else None


def item_size_bytes(item: WireItem) -> int:
    """The size DynamoDB counts for an item: UTF-8 names plus value sizes (Developer Guide, "Item sizes").

    Accepts both spellings of binary values, base64 text (event form) and bytes (SDK form); either way
    the raw byte length counts. Numbers: one byte per two significant digits, plus one.
    """
    return sum(_utf8(name) + value_size_bytes(value) for name, value in item.items())


def value_size_bytes(value: Mapping[str, Any]) -> int:
    tag, inner = next(iter(value.items()))
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
        return _LIST_OR_MAP_OVERHEAD + sum(_ELEMENT_OVERHEAD + value_size_bytes(member) for member in inner)
    if tag == "M":
        return _LIST_OR_MAP_OVERHEAD + sum(
            _ELEMENT_OVERHEAD + _utf8(name) + value_size_bytes(member) for name, member in inner.items()
        )
    raise WireFormatError(f"unknown DynamoDB type tag {tag!r}")


def _utf8(text: Any) -> int:
    return len(str(text).encode("utf-8"))


def _number_size(text: Any) -> int:
    mantissa = str(text).strip().lstrip("+-").split("e")[0].split("E")[0]
    digits = mantissa.replace(".", "").strip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def _binary_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    return len(base64.b64decode(value))


# --- validation of event-form values ---------------------------------------------------------------


def _is_object(value: Any) -> TypeGuard[Mapping[str, Any]]:
    # JSON gives dicts: the exact type check first, the (slow) ABC check only for other mappings.
    return type(value) is dict or isinstance(value, Mapping)


def validate_item(item: Any, where: str = "item") -> None:
    """Raise WireFormatError naming the first attribute that is not valid event-form DynamoDB JSON."""
    if not _is_object(item):
        raise WireFormatError(f"{where} must be an object of attributes, got {type(item).__name__}")
    for name, value in item.items():
        if type(name) is str and name and _plainly_valid(value, 1):
            continue  # the common case, decided without building a path
        if not isinstance(name, str) or not name:
            raise WireFormatError(f"{where} has an attribute with an empty or non-text name: {name!r}")
        validate_value(value, f"{where}.{name}", depth=1)


_PLAIN_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")  # no exponent, no sign "+", no blanks


def _plainly_valid(value: Any, depth: int) -> bool:
    """True only for a value that :func:`validate_value` accepts; False means "ask it".

    A shortcut for what streams mostly carry (S, short N without exponent, BOOL, NULL, M and L of
    those): no path strings, no regex on text, no Decimal. Binary values and sets always take the full
    check, as does a number of more than 38 characters (its digits must be counted).
    """
    if depth > MAX_DEPTH or type(value) is not dict or len(value) != 1:
        return False
    for tag, inner in value.items():
        if tag == "S":
            return type(inner) is str
        if tag == "N":
            # ASCII digits alone (a whole number, the commonest) match _PLAIN_NUMBER: no regex for them.
            return (
                type(inner) is str
                and len(inner) <= MAX_NUMBER_DIGITS
                and ((inner.isascii() and inner.isdigit()) or bool(_PLAIN_NUMBER.fullmatch(inner)))
            )
        if tag == "M":
            return type(inner) is dict and all(
                type(name) is str and _plainly_valid(member, depth + 1) for name, member in inner.items()
            )
        if tag == "L":
            return type(inner) is list and all(_plainly_valid(member, depth + 1) for member in inner)
        if tag == "BOOL":
            return type(inner) is bool
        if tag == "NULL":
            return inner is True
    return False


def validate_value(value: Any, path: str, depth: int = 1) -> None:
    if depth > MAX_DEPTH:
        raise WireFormatError(f"{path} nests deeper than DynamoDB's {MAX_DEPTH} levels")
    if not _is_object(value) or len(value) != 1:
        raise WireFormatError(
            f"{path} must be an object with exactly one type tag ({', '.join(TYPE_TAGS)}), got {_show(value)}"
        )
    tag, inner = next(iter(value.items()))
    if tag not in TYPE_TAGS:
        raise WireFormatError(f"{path} has unknown type tag {tag!r}; expected one of {TYPE_TAGS}")
    checker = _CHECKS[tag]
    checker(inner, f"{path}.{tag}", depth)


def _check_s(inner: Any, path: str, depth: int) -> None:
    if not isinstance(inner, str):
        raise WireFormatError(f"{path} must be a string, got {_show(inner)}")


def _check_n(inner: Any, path: str, depth: int) -> None:
    if not isinstance(inner, str) or not _NUMBER.match(inner.strip()):
        raise WireFormatError(f"{path} must be a number written as a string, got {_show(inner)}")
    digits = inner.strip().lstrip("+-").split("e")[0].split("E")[0].replace(".", "").strip("0")
    if len(digits) > MAX_NUMBER_DIGITS:
        raise WireFormatError(f"{path} has more than {MAX_NUMBER_DIGITS} significant digits: {inner[:60]!r}")
    text = inner.strip()
    # Without an exponent a number leaves the range only with more than 125 characters.
    if ("e" not in text and "E" not in text) and len(text) <= -MIN_EXPONENT - 5:
        return
    value = decimal.Decimal(text)
    if value != 0 and not MIN_EXPONENT <= value.adjusted() <= MAX_EXPONENT:
        raise WireFormatError(
            f"{path} = {inner[:60]!r} is outside DynamoDB's number range (magnitude 1E-130 to 9.99E+125)"
        )


def _check_b(inner: Any, path: str, depth: int) -> None:
    if not isinstance(inner, str):
        raise WireFormatError(f"{path} must be base64 text (as Lambda delivers binary), got {_show(inner)}")
    try:
        base64.b64decode(inner, validate=True)
    except (binascii.Error, ValueError):
        raise WireFormatError(f"{path} is not valid base64: {inner[:60]!r}") from None


def _check_bool(inner: Any, path: str, depth: int) -> None:
    if not isinstance(inner, bool):
        raise WireFormatError(f"{path} must be true or false, got {_show(inner)}")


def _check_null(inner: Any, path: str, depth: int) -> None:
    if inner is not True:
        raise WireFormatError(f"{path} must be true, got {_show(inner)}")


def _check_m(inner: Any, path: str, depth: int) -> None:
    if not _is_object(inner):
        raise WireFormatError(f"{path} must be an object, got {_show(inner)}")
    for name, member in inner.items():
        if not isinstance(name, str):
            raise WireFormatError(f"{path} has a non-text attribute name {name!r}")
        validate_value(member, f"{path}.{name}", depth + 1)


def _check_l(inner: Any, path: str, depth: int) -> None:
    if not isinstance(inner, list):
        raise WireFormatError(f"{path} must be a list, got {_show(inner)}")
    for index, member in enumerate(inner):
        validate_value(member, f"{path}[{index}]", depth + 1)


def _set_checker(member_check: Any) -> Any:
    def check(inner: Any, path: str, depth: int) -> None:
        if not isinstance(inner, list) or not inner:
            raise WireFormatError(
                f"{path} must be a non-empty list (DynamoDB has no empty sets), got {_show(inner)}"
            )
        for index, member in enumerate(inner):
            member_check(member, f"{path}[{index}]", depth)
        if len(set(inner)) != len(inner):
            raise WireFormatError(f"{path} has duplicate members")

    return check


_CHECKS = {
    "S": _check_s,
    "N": _check_n,
    "B": _check_b,
    "BOOL": _check_bool,
    "NULL": _check_null,
    "M": _check_m,
    "L": _check_l,
    "SS": _set_checker(_check_s),
    "NS": _set_checker(_check_n),
    "BS": _set_checker(_check_b),
}


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
