"""Property test: ``replicator.core.pattern.matches`` agrees with LocalStack's event-rule engine.

The oracle is ``localstack.utils.event_matcher.matches_event`` (test-only dependency pinned in
requirements-dev.txt; found right in every case tried on this machine). Hypothesis
generates DynamoDB-stream-shaped records and patterns from the subset Lambda event filtering documents
(https://docs.aws.amazon.com/lambda/latest/dg/invocation-eventfiltering.html#filtering-syntax) and
checks both engines give the same answer: for the whole record (the event source mapping's
FilterCriteria) and for a bare image in DynamoDB JSON (a per-target item filter).

Corners where LocalStack disagrees with the AWS documentation are left out of generation on purpose
(each one is pinned to the documented behaviour in tests/unit/test_pattern.py instead):

1. ``wildcard``: LocalStack turns ``*`` into ``.+`` (one or more characters); EventBridge documents
   ``*`` as zero or more characters ("Wildcard matching", eb-create-pattern-operators.html, e.g.
   ``"dir/*.png"`` and ``*`` alone matching any value). No wildcard is generated.
2. Types mix in LocalStack: it compares with Python ``==`` and ``isinstance(value, int)``, so the
   pattern ``[1]`` matches the event value ``true`` and ``{"numeric": [">", 0]}`` matches ``true``.
   EventBridge matches JSON values ("Matching event values", eb-create-pattern.html; numeric matching
   is for JSON numbers). Generation never pairs numbers 0/1 or numeric ranges with the ``BOOL``/``NULL``
   keys (the only places a stream record holds booleans), and no event number is 0 or 1.
3. LocalStack calls ``.lower()`` on the event value for ``{"prefix"|"suffix": {"equals-ignore-case"}}``
   without checking it is a string (AttributeError on a number or boolean). Those rules are generated
   only for string-valued keys.
4. ``$or`` next to a sibling with the same field: LocalStack flattens the pattern into a dict per
   branch and the sibling overwrites the branch's condition, dropping it (``{"a": ["x"], "$or": [{"a":
   ["y"]}, ...]}`` loses ``a == "y"``); EventBridge ANDs them ("Or matching", eb-create-pattern-
   operators.html). ``$or`` alternatives are generated with fields disjoint from their siblings.
5. Arrays of objects: LocalStack evaluates each leaf path against any array element independently;
   EventBridge (aws/event-ruler ``rulesForJSONEvent``, "array consistency") needs one element to match
   the whole sub-pattern. Under a DynamoDB ``L`` list every generated sub-pattern is a single path, where
   both readings agree.
6. Field names never contain ``.``: LocalStack joins paths with dots, so ``{"a.b": [...]}`` also reaches
   ``{"a": {"b": ...}}`` (an undocumented AWS quirk LocalStack copies on purpose).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replicator.core.pattern import matches, validate_pattern

try:
    from localstack.utils.event_matcher import matches_event, validate_event_pattern
except ImportError as exc:  # pragma: no cover - only without requirements-dev.txt
    pytest.skip(
        f"oracle unavailable: `localstack.utils.event_matcher` does not import ({exc}); "
        "install requirements-dev.txt (`make setup`)",
        allow_module_level=True,
    )

# Hypothesis draws a seed per example (a failure reports it: replay with random.Random(seed)); the
# record and pattern are then built with ``random.Random`` (drawing every node through Hypothesis costs
# about 0.3 s per example). Each example checks one pattern built to fit one event against that event
# and against OTHER_EVENTS unrelated ones.
EXAMPLES = 2000
OTHER_EVENTS = 4
# LocalStack expands every event array and every $or into a cross product of flat copies; keep both
# small or a single case takes seconds.
MAX_BRANCHES = 16

# ---- value pools (ASCII only: Python's and Java's lower-casing agree there) -----------------------
STRINGS = [
    "",
    "eu-west-1",
    "EU-West-1",
    "us-east-1",
    "eu-",
    "INSERT",
    "insert",
    "REMOVE",
    "tenant-a",
    "Tenant-A",
    "a.png",
    "b.PNG",
    "x",
    "X",
    "5",
]
# Event and pattern numbers avoid 0 and 1 (corner 2 above).
NUMBERS = [2, 5, 10, 26, 100, -3, 2.5, 1678831218, 1678831218.5]
NUM_STRINGS = ["5", "10", "-1.5", "0", "1", "26"]
ATTR_NAMES = ["pk", "tenant", "rep_region", "qty", "flag", "tags"]
TYPE_KEYS = ["S", "N", "BOOL", "NULL", "SS", "NS", "L", "M"]
NUMBER_KEYS = {"SizeBytes", "ApproximateCreationDateTime"}
BOOL_KEYS = {"BOOL", "NULL"}
FIELDS = {
    "record": ["dynamodb", "eventName", "awsRegion", "eventSource", "absentField", "userIdentity"],
    "ddb": ["NewImage", "OldImage", "Keys", "SizeBytes", "ApproximateCreationDateTime", "StreamViewType"],
    "identity": ["type", "principalId"],
    "image": ATTR_NAMES,
    "attr": TYPE_KEYS,
}
CHILD_LEVEL = {
    ("record", "dynamodb"): "ddb",
    ("record", "userIdentity"): "identity",
    ("ddb", "NewImage"): "image",
    ("ddb", "OldImage"): "image",
    ("ddb", "Keys"): "image",
    ("attr", "L"): "attr",
    ("attr", "M"): "image",
}


def rand_text(rnd: random.Random) -> str:
    if rnd.random() < 0.8:
        return rnd.choice(STRINGS)
    return "".join(rnd.choice("aAbB-.5") for _ in range(rnd.randint(0, 4)))


# ---- DynamoDB stream records ---------------------------------------------------------------------


def attr_value(rnd: random.Random, depth: int) -> dict[str, Any]:
    kind = rnd.choice(TYPE_KEYS if depth < 2 else TYPE_KEYS[:6])
    if kind == "S":
        return {"S": rand_text(rnd)}
    if kind == "N":
        return {"N": rnd.choice(NUM_STRINGS)}
    if kind == "BOOL":
        return {"BOOL": rnd.random() < 0.5}
    if kind == "NULL":
        return {"NULL": True}
    if kind == "SS":
        return {"SS": sorted({rand_text(rnd) for _ in range(rnd.randint(1, 3))})}
    if kind == "NS":
        return {"NS": sorted(set(rnd.choices(NUM_STRINGS, k=rnd.randint(1, 3))))}
    if kind == "L":
        return {"L": [attr_value(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]}
    return {"M": image(rnd, depth + 1, max_size=3)}


def image(rnd: random.Random, depth: int = 0, max_size: int = 5) -> dict[str, Any]:
    names = rnd.sample(ATTR_NAMES, rnd.randint(0, max_size))
    return {name: attr_value(rnd, depth) for name in names}


def branches(value: Any) -> int:
    """How many flat copies LocalStack makes of an event: the product of the array lengths."""
    if isinstance(value, dict):
        total = 1
        for child in value.values():
            total *= branches(child)
        return total
    if isinstance(value, list):
        return max(1, sum(branches(element) for element in value))
    return 1


def small(build: Callable[[random.Random], dict[str, Any]], rnd: random.Random) -> dict[str, Any]:
    while True:
        event = build(rnd)
        if branches(event) <= MAX_BRANCHES:
            return event


def stream_record(rnd: random.Random) -> dict[str, Any]:
    name = rnd.choice(["INSERT", "MODIFY", "REMOVE"])
    pk = rand_text(rnd)
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": rnd.choice([1678831218, 1678831218.5, 1700000000]),
        "Keys": {"pk": {"S": pk}},
        "SequenceNumber": rnd.choice(["111", "222"]),
        "SizeBytes": rnd.randint(2, 400),
        "StreamViewType": rnd.choice(["NEW_AND_OLD_IMAGES", "NEW_IMAGE", "KEYS_ONLY"]),
    }
    if name != "REMOVE":
        ddb["NewImage"] = {**image(rnd), "pk": {"S": pk}}
    if name != "INSERT" and rnd.random() < 0.5:
        ddb["OldImage"] = {**image(rnd), "pk": {"S": pk}}
    record: dict[str, Any] = {
        "eventID": rnd.choice(["1", "abc"]),
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": rnd.choice(["eu-west-1", "us-east-1", "eu-central-1"]),
        "dynamodb": ddb,
        "eventSourceARN": "arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/2024",
    }
    if rnd.random() < 0.2:
        record["userIdentity"] = {"type": "Service", "principalId": "dynamodb.amazonaws.com"}
    return record


# ---- patterns, usually built to fit a given event ------------------------------------------------


def rule(rnd: random.Random, key: str, sample: Any) -> Any:
    """One rule for leaf ``key``; ``sample`` is a value the event holds there (or None)."""
    is_bool_key = key in BOOL_KEYS
    string_valued = key not in NUMBER_KEYS and not is_bool_key
    s = sample if isinstance(sample, str) and rnd.random() < 0.7 else rand_text(rnd)
    n = sample if isinstance(sample, int | float) and not isinstance(sample, bool) else rnd.choice(NUMBERS)
    cut = rnd.randint(0, len(s))
    kinds = ["exact", "null", "prefix", "suffix", "equals-ignore-case", "anything-but", "exists"]
    kinds += ["bool"] if is_bool_key else ["number", "numeric"]
    if string_valued:
        kinds += ["prefix-ic", "suffix-ic"]
    kind = rnd.choice(kinds)
    if kind == "exact":
        return s
    if kind == "null":
        return None
    if kind == "bool":
        return sample if isinstance(sample, bool) and rnd.random() < 0.6 else rnd.random() < 0.5
    if kind == "number":
        return n
    if kind == "prefix":
        return {"prefix": s[:cut]}
    if kind == "suffix":
        return {"suffix": s[cut:]}
    if kind == "prefix-ic":
        return {"prefix": {"equals-ignore-case": s[:cut].swapcase()}}
    if kind == "suffix-ic":
        return {"suffix": {"equals-ignore-case": s[cut:].swapcase()}}
    if kind == "equals-ignore-case":
        return {kind: rnd.choice([s, s.swapcase(), s.upper()])}
    if kind == "exists":
        return {"exists": rnd.random() < 0.5}
    if kind == "numeric":
        op = rnd.choice(["=", "<", "<=", ">", ">="])
        if rnd.random() < 0.5:
            return {"numeric": [op, n]}
        low = n - rnd.choice([0, 1, 2.5])
        high = low + rnd.choice([1, 2.5, 10**9])
        return {"numeric": [rnd.choice([">", ">="]), low, rnd.choice(["<", "<="]), high]}
    # anything-but
    plain: list[Any] = [s, rand_text(rnd)] + ([] if is_bool_key else [n])
    form = rnd.choice(["value", "list", "prefix", "suffix", "eic", "eic-list"])
    if form == "value":
        return {"anything-but": rnd.choice(plain)}
    if form == "list":
        return {"anything-but": rnd.sample(plain, rnd.randint(1, len(plain)))}
    if form in ("prefix", "suffix"):
        part = (s[: max(cut, 1)] if form == "prefix" else s[min(cut, len(s) - 1) :]) or "eu-"
        return {"anything-but": {form: part}}
    if form == "eic":
        return {"anything-but": {"equals-ignore-case": s.swapcase()}}
    return {"anything-but": {"equals-ignore-case": [s.upper(), rand_text(rnd)]}}


def leaf_samples(node: Any) -> list[Any]:
    if isinstance(node, list):
        return [x for x in node if not isinstance(x, dict | list)] or [None]
    return [None if isinstance(node, dict) else node]


def rules(rnd: random.Random, key: str, node: Any) -> list[Any]:
    samples = leaf_samples(node)
    return [rule(rnd, key, rnd.choice(samples)) for _ in range(rnd.randint(1, 3))]


def pattern_object(
    rnd: random.Random, level: str, node: Any, *, single: bool, depth: int, names: list[str] | None = None
) -> dict[str, Any]:
    """An object pattern at ``level``, biased towards the fields ``node`` (the event there) has.

    ``single``: one field and no ``$or`` (below a DynamoDB list, corner 5).
    """
    names = names or FIELDS[level]
    present = [k for k in names if isinstance(node, dict) and k in node]
    chosen: list[str] = []
    for _ in range(1 if single else rnd.choice([1, 1, 2, 3])):
        pool = present if present and rnd.random() < 0.8 else names
        key = rnd.choice(pool)
        if key not in chosen:
            chosen.append(key)
    result: dict[str, Any] = {}
    for key in chosen:
        sub = node.get(key) if isinstance(node, dict) else None
        child = CHILD_LEVEL.get((level, key), "attr" if level == "image" else None)
        if child is not None and depth < 4 and rnd.random() < 0.9:
            below_list = level == "attr" and key == "L"
            if below_list:
                sub = rnd.choice(sub) if isinstance(sub, list) and sub else None
            result[key] = pattern_object(rnd, child, sub, single=single or below_list, depth=depth + 1)
        else:
            result[key] = rules(rnd, key, sub)
    rest = [k for k in names if k not in chosen]
    if not single and rest and rnd.random() < 0.15:
        # $or alternatives use fields disjoint from their siblings (corner 4).
        alternatives = [
            pattern_object(rnd, level, node, single=False, depth=depth, names=rest)
            for _ in range(rnd.randint(2, 3))
        ]
        items = list(result.items())
        items.insert(rnd.randint(0, len(items)), ("$or", alternatives))
        result = dict(items)
    return result


def or_branches(pattern: Any) -> int:
    """How many flat patterns LocalStack expands ``pattern`` into (``$or`` alternatives multiply)."""
    if not isinstance(pattern, dict):
        return 1
    total = 1
    for key, value in pattern.items():
        total *= sum(map(or_branches, value)) if key == "$or" else or_branches(value)
    return total


def fitted_pattern(rnd: random.Random, level: str, event: dict[str, Any]) -> dict[str, Any]:
    while True:
        pattern = pattern_object(rnd, level, event, single=False, depth=0)
        if or_branches(pattern) <= MAX_BRANCHES:
            return pattern


# ---- the properties ------------------------------------------------------------------------------

SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _agree(pattern: dict[str, Any], event: dict[str, Any]) -> None:
    # Given: a pattern both engines accept
    validate_pattern(pattern)
    assert validate_event_pattern(pattern), pattern
    # When
    ours = matches(pattern, event)
    # Then
    assert ours == matches_event(pattern, event), (pattern, event)


@SETTINGS
@given(seed=st.integers(min_value=0, max_value=2**64))
def test_filter_criteria_patterns_agree_with_localstack_on_stream_records(seed: int) -> None:
    rnd = random.Random(seed)
    event = small(stream_record, rnd)
    pattern = fitted_pattern(rnd, "record", event)
    for other in [event] + [small(stream_record, rnd) for _ in range(OTHER_EVENTS)]:
        _agree(pattern, other)


@SETTINGS
@given(seed=st.integers(min_value=0, max_value=2**64))
def test_item_filters_agree_with_localstack_on_ddb_json_items(seed: int) -> None:
    rnd = random.Random(seed)
    item = small(image, rnd)
    pattern = fitted_pattern(rnd, "image", item)
    for other in [item] + [small(image, rnd) for _ in range(OTHER_EVENTS)]:
        _agree(pattern, other)


def test_the_generated_cases_exercise_both_outcomes() -> None:
    # Given a fixed seed, When many cases are generated, Then both answers are common (or agreement
    # would mean little). (No timing assertion: speed is for benchmarks, not tests.)
    rnd = random.Random(20240611)
    outcomes = []
    for _ in range(300):
        event = small(stream_record, rnd)
        pattern = fitted_pattern(rnd, "record", event)
        outcomes.append(matches_event(pattern, event))
        item = small(image, rnd)
        outcomes.append(matches_event(fitted_pattern(rnd, "image", item), item))
    share = sum(outcomes) / len(outcomes)
    assert 0.2 < share < 0.8, share
