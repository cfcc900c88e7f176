"""Event-pattern matching: the subset of EventBridge patterns that Lambda event filtering documents.

Used twice: by the local stand-in for a Lambda event source mapping, to apply ``FilterCriteria`` to
DynamoDB stream records exactly like Lambda does, and by the replicator, to apply per-target item
filters written against an item in DynamoDB JSON (``{"tenant": {"S": [{"prefix": "eu-"}]}}``).

Pure standard library: this module ships inside the Lambda asset.

Semantics (AWS "Control which events Lambda sends to your function" and EventBridge "Comparison
operators for use in event patterns"):

* A pattern is a JSON object. A key whose value is an object descends into the event; a key whose
  value is an array holds the match rules for that leaf, OR-ed. All keys of an object are AND-ed.
* ``{"$or": [pattern, pattern, ...]}`` (at least two objects) OR-s whole sub-patterns.
* Exact values: string, number, ``true``/``false`` and ``null`` (types never mix: ``1`` is not ``true``
  and ``"1"`` is not ``1``; ``null`` matches a present JSON null, never a missing key).
* ``prefix`` / ``suffix`` (a string, or ``{"equals-ignore-case": "..."}``), ``equals-ignore-case``,
  ``wildcard`` (``*`` is zero or more characters, ``\\*`` a literal star), ``numeric`` (``["=", 5]``,
  ``[">", 0, "<=", 5]``; real JSON numbers only: DynamoDB stream numbers are strings inside
  ``{"N": "..."}`` and never match), ``anything-but`` (a value, a list of values, or ``{"prefix" |
  "suffix" | "wildcard" | "equals-ignore-case": ...}``), ``exists`` (``true``/``false``).
* A key missing from the event fails every rule except ``{"exists": false}``; ``anything-but`` also
  fails on a missing key. ``exists`` looks at leaves only: a key whose event value is an object (a
  DynamoDB attribute ``{"S": "x"}``, say) is not a leaf, so ``{"rep_region": [{"exists": true}]}``
  never matches; write ``{"rep_region": {"S": [{"exists": true}]}}``.
* Arrays in the event: a leaf rule matches when any element matches; a nested object pattern matches
  when any one element matches it as a whole. An empty array counts as a missing key.
* A repeated key in one pattern JSON keeps the last one (``json.loads`` does that already).
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

__all__ = ["PatternError", "filter_criteria_matches", "matches", "validate_pattern"]


class PatternError(ValueError):
    """A pattern that Lambda event filtering (or EventBridge) would reject."""


_MISSING: Final = object()

_OPERATORS: Final = (
    "prefix",
    "suffix",
    "equals-ignore-case",
    "anything-but",
    "exists",
    "numeric",
    "wildcard",
)
_ANYTHING_BUT_OPERATORS: Final = ("prefix", "suffix", "equals-ignore-case", "wildcard")
_RULE_HELP: Final = "a string, a number, true, false, null, or an object with exactly one of " + ", ".join(
    f'"{op}"' for op in _OPERATORS
)
_LOWER_OPERATORS: Final = (">", ">=")
_UPPER_OPERATORS: Final = ("<", "<=")


# --------------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "an array"
    return type(value).__name__


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and math.isfinite(value))


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | bool) or _is_number(value)


def validate_pattern(pattern: Any) -> None:
    """Raise :class:`PatternError` naming the path of the first invalid part of ``pattern``."""
    if not isinstance(pattern, Mapping):
        raise PatternError(f"pattern: must be a JSON object, got {_kind(pattern)}")
    _validate_object(pattern, "", top=True)


def _validate_object(obj: Mapping[str, Any], path: str, *, top: bool = False) -> None:
    if not obj and not top:
        raise PatternError(f"{path or 'pattern'}: an empty object matches nothing useful; remove it")
    for key, value in obj.items():
        if not isinstance(key, str):
            raise PatternError(f"{path or 'pattern'}: field names must be strings, got {key!r}")
        where = _join(path, key)
        if key == "$or":
            if not isinstance(value, list | tuple) or len(value) < 2:
                raise PatternError(f"{where}: must be an array of at least two pattern objects")
            for index, alternative in enumerate(value):
                if not isinstance(alternative, Mapping):
                    raise PatternError(
                        f"{where}[{index}]: must be a pattern object, got {_kind(alternative)}"
                    )
                _validate_object(alternative, f"{where}[{index}]")
        elif isinstance(value, Mapping):
            _validate_object(value, where)
        elif isinstance(value, list | tuple):
            if not value:
                raise PatternError(f"{where}: an empty array matches nothing; give at least one rule")
            for index, rule in enumerate(value):
                _validate_rule(rule, f"{where}[{index}]")
        else:
            raise PatternError(
                f"{where}: must be an object (to match nested fields) or an array of rules, "
                f"got {_kind(value)}; write [{json.dumps(value)}] to match the value exactly"
                if _is_scalar(value)
                else f"{where}: must be an object (to match nested fields) or an array of rules, "
                f"got {_kind(value)}"
            )


def _validate_rule(rule: Any, where: str) -> None:
    if _is_scalar(rule):
        return
    if isinstance(rule, float):  # NaN or infinity
        raise PatternError(f"{where}: numbers must be finite")
    if not isinstance(rule, Mapping):
        raise PatternError(f"{where}: a rule must be {_RULE_HELP}; got {_kind(rule)}")
    if len(rule) != 1:
        raise PatternError(
            f"{where}: a rule object must have exactly one operator, got {sorted(map(str, rule))}"
        )
    ((operator, operand),) = rule.items()
    at = f"{where}.{operator}"
    if operator in ("prefix", "suffix"):
        if isinstance(operand, Mapping):
            if list(operand) != ["equals-ignore-case"] or not isinstance(operand["equals-ignore-case"], str):
                raise PatternError(f'{at}: must be a string or {{"equals-ignore-case": "<string>"}}')
        elif not isinstance(operand, str):
            raise PatternError(f"{at}: must be a string, got {_kind(operand)}")
    elif operator == "equals-ignore-case":
        if not isinstance(operand, str):
            raise PatternError(f"{at}: must be a string, got {_kind(operand)}")
    elif operator == "exists":
        if not isinstance(operand, bool):
            raise PatternError(f"{at}: must be true or false, got {_kind(operand)}")
    elif operator == "numeric":
        _validate_numeric(operand, at)
    elif operator == "wildcard":
        _validate_wildcard(operand, at)
    elif operator == "anything-but":
        _validate_anything_but(operand, at)
    else:
        raise PatternError(f"{where}: unknown operator {operator!r}; a rule must be {_RULE_HELP}")


def _validate_anything_but(operand: Any, at: str) -> None:
    if isinstance(operand, str) or _is_number(operand):
        return
    if isinstance(operand, list | tuple):
        if not operand:
            raise PatternError(f"{at}: the list must not be empty")
        for index, value in enumerate(operand):
            if not (isinstance(value, str) or _is_number(value)):
                raise PatternError(
                    f"{at}[{index}]: the list may hold strings and numbers only, got {_kind(value)}"
                )
        return
    if isinstance(operand, Mapping):
        if len(operand) != 1 or next(iter(operand)) not in _ANYTHING_BUT_OPERATORS:
            raise PatternError(
                f"{at}: an object must have exactly one of "
                + ", ".join(f'"{op}"' for op in _ANYTHING_BUT_OPERATORS)
                + f", got {sorted(map(str, operand))}"
            )
        ((inner, value),) = operand.items()
        inner_at = f"{at}.{inner}"
        values = value if isinstance(value, list | tuple) else [value]
        if not values or not all(isinstance(v, str) for v in values):
            raise PatternError(f"{inner_at}: must be a string or a non-empty list of strings")
        if inner in ("prefix", "suffix") and not all(values):
            raise PatternError(f"{inner_at}: must not be empty")
        if inner == "wildcard":
            for v in values:
                _validate_wildcard(v, inner_at)
        return
    raise PatternError(
        f"{at}: must be a string, a number, a list of strings/numbers, or an object with one of "
        + ", ".join(f'"{op}"' for op in _ANYTHING_BUT_OPERATORS)
        + f"; got {_kind(operand)}"
    )


def _validate_numeric(operand: Any, at: str) -> None:
    help_text = 'e.g. ["=", 5], [">", 0], [">=", 0, "<", 10]'
    if not isinstance(operand, list | tuple) or len(operand) not in (2, 4):
        raise PatternError(f"{at}: must be an array of one or two (operator, number) pairs, {help_text}")
    first, low = operand[0], operand[1]
    if first not in ("=", *_LOWER_OPERATORS, *_UPPER_OPERATORS):
        raise PatternError(f"{at}[0]: unknown numeric operator {first!r}; use =, <, <=, > or >=")
    if not _is_number(low):
        raise PatternError(f"{at}[1]: must be a finite number, got {_kind(low)}")
    if len(operand) == 2:
        return
    second, high = operand[2], operand[3]
    if first not in _LOWER_OPERATORS or second not in _UPPER_OPERATORS:
        raise PatternError(f"{at}: a range must be a lower bound (> or >=) then an upper bound (< or <=)")
    if not _is_number(high):
        raise PatternError(f"{at}[3]: must be a finite number, got {_kind(high)}")
    if high <= low:
        raise PatternError(f"{at}: the lower bound must be less than the upper bound")


def _validate_wildcard(operand: Any, at: str) -> None:
    if not isinstance(operand, str):
        raise PatternError(f"{at}: must be a string, got {_kind(operand)}")
    if "**" in operand:
        raise PatternError(f"{at}: consecutive wildcard characters (**) are not allowed")


# --------------------------------------------------------------------------------------------------
# Matching
# --------------------------------------------------------------------------------------------------


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Whether ``event`` matches ``pattern`` (raises :class:`PatternError` on an invalid pattern)."""
    validate_pattern(pattern)
    return _match_object(pattern, event)


def _expand(value: Any) -> list[Any]:
    """The candidates an event value stands for: array elements (flattened), an empty array as missing."""
    if isinstance(value, list | tuple):
        if not value:
            return [_MISSING]
        return [candidate for element in value for candidate in _expand(element)]
    return [value]


def _match_object(pattern: Mapping[str, Any], node: Any) -> bool:
    for key, sub in pattern.items():
        if key == "$or":
            if not any(_match_object(alternative, node) for alternative in sub):
                return False
            continue
        child = node.get(key, _MISSING) if isinstance(node, Mapping) else _MISSING
        candidates = _expand(child)
        if isinstance(sub, Mapping):
            ok = any(_match_object(sub, candidate) for candidate in candidates)
        else:
            # Leaves only: an object in the event is not a value a rule can see.
            leaves = [_MISSING if isinstance(c, Mapping) else c for c in candidates]
            ok = any(_match_rule(rule, leaf) for rule in sub for leaf in leaves)
        if not ok:
            return False
    return True


def _same(a: Any, b: Any) -> bool:
    """JSON equality: types never mix (true is not 1, "1" is not 1); 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return _is_number(a) and _is_number(b) and a == b


def _match_rule(rule: Any, value: Any) -> bool:
    if not isinstance(rule, Mapping):
        return value is not _MISSING and _same(rule, value)
    ((operator, operand),) = rule.items()
    if operator == "exists":
        return (value is not _MISSING) is operand
    if value is _MISSING:
        return False
    if operator == "anything-but":
        return _anything_but(operand, value)
    if operator == "numeric":
        return _is_number(value) and _numeric(operand, value)
    if not isinstance(value, str):
        return False
    if operator == "prefix":
        if isinstance(operand, Mapping):
            return value.lower().startswith(operand["equals-ignore-case"].lower())
        return value.startswith(operand)
    if operator == "suffix":
        if isinstance(operand, Mapping):
            return value.lower().endswith(operand["equals-ignore-case"].lower())
        return value.endswith(operand)
    if operator == "equals-ignore-case":
        return bool(value.lower() == operand.lower())
    if operator == "wildcard":
        return _wildcard_regex(operand).fullmatch(value) is not None
    raise PatternError(f"unknown operator {operator!r}")  # unreachable after validation


def _anything_but(operand: Any, value: Any) -> bool:
    if isinstance(operand, Mapping):
        ((inner, expected),) = operand.items()
        expected_values = expected if isinstance(expected, list | tuple) else [expected]
        if not isinstance(value, str):
            return True  # a string test cannot hit a non-string, so "anything but" it holds
        if inner == "prefix":
            return not any(value.startswith(e) for e in expected_values)
        if inner == "suffix":
            return not any(value.endswith(e) for e in expected_values)
        if inner == "equals-ignore-case":
            return not any(value.lower() == e.lower() for e in expected_values)
        return not any(_wildcard_regex(e).fullmatch(value) for e in expected_values)
    if isinstance(operand, list | tuple):
        return not any(_same(value, e) for e in operand)
    return not _same(value, operand)


def _numeric(operand: Sequence[Any], value: float) -> bool:
    for index in range(0, len(operand), 2):
        operator, bound = operand[index], operand[index + 1]
        if operator == "=":
            ok = value == bound
        elif operator == "<":
            ok = value < bound
        elif operator == "<=":
            ok = value <= bound
        elif operator == ">":
            ok = value > bound
        else:
            ok = value >= bound
        if not ok:
            return False
    return True


@functools.lru_cache(maxsize=256)
def _wildcard_regex(wildcard: str) -> re.Pattern[str]:
    parts: list[str] = []
    index = 0
    while index < len(wildcard):
        char = wildcard[index]
        if char == "\\" and index + 1 < len(wildcard) and wildcard[index + 1] in "*\\":
            parts.append(re.escape(wildcard[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "*" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)


# --------------------------------------------------------------------------------------------------
# Lambda FilterCriteria
# --------------------------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise PatternError(f"{name} is not valid JSON")


@functools.lru_cache(maxsize=256)
def _parse_pattern_json(text: str) -> Mapping[str, Any]:
    try:
        pattern = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise PatternError(f"Pattern is not valid JSON: {exc}") from exc
    validate_pattern(pattern)
    return cast(Mapping[str, Any], pattern)


def _filter_pattern(item: Any, index: int) -> Mapping[str, Any]:
    if isinstance(item, Mapping) and set(item) == {"Pattern"}:
        item = item["Pattern"]
    try:
        if isinstance(item, str):
            return _parse_pattern_json(item)
        validate_pattern(item)
    except PatternError as exc:
        raise PatternError(f"Filters[{index}]: {exc}") from exc
    return cast(Mapping[str, Any], item)


def filter_criteria_matches(filters: Sequence[str | Mapping[str, Any]], event: Mapping[str, Any]) -> bool:
    """Lambda's ``FilterCriteria``: ``event`` passes when any filter's pattern matches.

    ``filters`` is ``FilterCriteria.Filters`` as CloudFormation and the Lambda API spell it
    (``[{"Pattern": "<json>"}]``); a bare JSON string or pattern object per item is accepted too, and so
    is the whole ``{"Filters": [...]}`` object. No filters at all means no filtering: every event passes.
    """
    if isinstance(filters, Mapping):
        filters = filters.get("Filters") or []
    if isinstance(filters, str):
        raise PatternError("Filters: must be a list of {'Pattern': '<json>'} objects, got a string")
    patterns = [_filter_pattern(item, index) for index, item in enumerate(filters)]
    if not patterns:
        return True
    return any(_match_object(pattern, event) for pattern in patterns)
