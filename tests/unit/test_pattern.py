"""Unit tests for replicator.core.pattern: one group per operator, the mesh filters, validation."""

from __future__ import annotations

import json
from typing import Any

import pytest

from replicator.core.pattern import PatternError, filter_criteria_matches, matches, validate_pattern

# ---- helpers -------------------------------------------------------------------------------------


def stream_record(
    name: str, new: dict[str, Any] | None = None, old: dict[str, Any] | None = None
) -> dict[str, Any]:
    ddb: dict[str, Any] = {
        "ApproximateCreationDateTime": 1678831218.0,
        "Keys": {"pk": {"S": "k1"}},
        "SequenceNumber": "111",
        "SizeBytes": 26,
        "StreamViewType": "NEW_AND_OLD_IMAGES",
    }
    if new is not None:
        ddb["NewImage"] = new
    if old is not None:
        ddb["OldImage"] = old
    return {
        "eventID": "1",
        "eventName": name,
        "eventVersion": "1.1",
        "eventSource": "aws:dynamodb",
        "awsRegion": "eu-west-1",
        "dynamodb": ddb,
    }


def item(**attrs: Any) -> dict[str, Any]:
    return {"pk": {"S": "k1"}, **attrs}


# ---- exact values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rules", "value", "expected"),
    [
        (["a"], "a", True),
        (["a", "b"], "b", True),
        (["a"], "A", False),
        ([""], "", True),
        ([5], 5, True),
        ([5], 5.0, True),
        ([5], "5", False),
        (["5"], 5, False),
        ([True], True, True),
        ([True], 1, False),
        ([1], True, False),
        ([False], False, True),
        ([None], None, True),
        ([None], "", False),
    ],
)
def test_exact_values_match_by_json_value_and_type(rules: list[Any], value: Any, expected: bool) -> None:
    # Given a pattern with exact values, When matched against an event value, Then types never mix
    assert matches({"f": rules}, {"f": value}) is expected


def test_a_missing_field_fails_every_exact_value_including_null() -> None:
    # Given a pattern on "f", When the event has no "f", Then it does not match
    assert not matches({"f": [None]}, {"g": None})
    assert not matches({"f": ["a"]}, {})


def test_all_fields_must_match_and_values_in_one_array_are_ored() -> None:
    pattern = {"a": ["x", "y"], "b": ["z"]}
    assert matches(pattern, {"a": "y", "b": "z", "c": "ignored"})
    assert not matches(pattern, {"a": "y", "b": "w"})
    assert not matches(pattern, {"a": "y"})


def test_an_empty_pattern_matches_everything() -> None:
    assert matches({}, {"anything": 1})


# ---- prefix / suffix / equals-ignore-case / wildcard ---------------------------------------------


@pytest.mark.parametrize(
    ("rule", "value", "expected"),
    [
        ({"prefix": "eu-"}, "eu-west-1", True),
        ({"prefix": "eu-"}, "EU-west-1", False),
        ({"prefix": ""}, "", True),
        ({"prefix": "eu-"}, 5, False),
        ({"prefix": {"equals-ignore-case": "EU-"}}, "eu-west-1", True),
        ({"prefix": {"equals-ignore-case": "EU-"}}, "us-east-1", False),
        ({"prefix": {"equals-ignore-case": "5"}}, 5, False),
        ({"suffix": {"equals-ignore-case": "e"}}, True, False),
        ({"suffix": ".png"}, "a.png", True),
        ({"suffix": ".png"}, "a.PNG", False),
        ({"suffix": {"equals-ignore-case": ".png"}}, "a.PNG", True),
        ({"equals-ignore-case": "initializing"}, "INITIALIZING", True),
        ({"equals-ignore-case": "initializing"}, "initialized", False),
        ({"equals-ignore-case": "5"}, 5, False),
        ({"wildcard": "dir/*.png"}, "dir/a.png", True),
        ({"wildcard": "dir/*.png"}, "dir/.png", True),  # * is zero or more characters
        ({"wildcard": "dir/*.png"}, "dir/a.jpg", False),
        ({"wildcard": "*"}, "", True),
        ({"wildcard": "a\\*b"}, "a*b", True),  # \* is a literal star
        ({"wildcard": "a\\*b"}, "axb", False),
        ({"wildcard": "a.c"}, "abc", False),  # no regex leaks through
    ],
)
def test_string_operators(rule: dict[str, Any], value: Any, expected: bool) -> None:
    # Given a string operator, When matched, Then only strings can satisfy it
    assert matches({"f": [rule]}, {"f": value}) is expected


def test_item_filter_prefix_on_a_ddb_json_attribute() -> None:
    # Given the item filter from the brief, When applied to items in DynamoDB JSON
    pattern = {"tenant": {"S": [{"prefix": "eu-"}]}}
    # Then only the matching tenant passes, and a missing or differently typed attribute does not
    assert matches(pattern, item(tenant={"S": "eu-acme"}))
    assert not matches(pattern, item(tenant={"S": "us-acme"}))
    assert not matches(pattern, item())
    assert not matches(pattern, item(tenant={"N": "5"}))


# ---- anything-but --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operand", "value", "expected"),
    [
        ("initializing", "running", True),
        ("initializing", "initializing", False),
        (["a", "b"], "c", True),
        (["a", "b"], "b", False),
        ([5, 6], 5, False),
        ([5, 6], "5", True),
        (5, 5.0, False),
        ({"prefix": "us-"}, "eu-west-1", True),
        ({"prefix": "us-"}, "us-east-1", False),
        ({"suffix": ".png"}, "a.jpg", True),
        ({"suffix": ".png"}, "a.png", False),
        ({"equals-ignore-case": "initializing"}, "INITIALIZING", False),
        ({"equals-ignore-case": ["a", "b"]}, "B", False),
        ({"equals-ignore-case": ["a", "b"]}, "c", True),
        ({"wildcard": "*/lib/*"}, "src/lib/x", False),
        ({"wildcard": "*/lib/*"}, "src/bin/x", True),
    ],
)
def test_anything_but(operand: Any, value: Any, expected: bool) -> None:
    assert matches({"f": [{"anything-but": operand}]}, {"f": value}) is expected


def test_anything_but_needs_the_field_to_exist() -> None:
    # Given anything-but, When the field is missing, Then it fails (EventBridge semantics)
    assert not matches({"f": [{"anything-but": "x"}]}, {})


# ---- exists ---------------------------------------------------------------------------------------


def test_exists_true_and_false_on_leaves() -> None:
    assert matches({"f": [{"exists": True}]}, {"f": "x"})
    assert matches({"f": [{"exists": True}]}, {"f": None})
    assert not matches({"f": [{"exists": True}]}, {})
    assert matches({"f": [{"exists": False}]}, {})
    assert not matches({"f": [{"exists": False}]}, {"f": ""})


def test_exists_matches_leaves_only_an_object_is_not_a_leaf() -> None:
    # Given a DynamoDB attribute (an object), When exists is put on the attribute itself
    event = item(rep_region={"S": "eu-west-1"})
    # Then the attribute does not count as existing: write exists under the type key instead
    assert not matches({"rep_region": [{"exists": True}]}, event)
    assert matches({"rep_region": [{"exists": False}]}, event)
    assert matches({"rep_region": {"S": [{"exists": True}]}}, event)
    assert not matches({"rep_region": {"S": [{"exists": False}]}}, event)


def test_exists_false_below_a_missing_parent_matches() -> None:
    assert matches({"a": {"b": [{"exists": False}]}}, {})
    assert matches({"a": {"b": [{"exists": False}]}}, {"a": "scalar"})
    assert not matches({"a": {"b": ["x"]}}, {"a": "scalar"})


# ---- numeric -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("operand", "value", "expected"),
    [
        (["=", 5], 5, True),
        (["=", 5], 5.0, True),
        (["=", 5], 6, False),
        (["<", 5], 4.9, True),
        (["<", 5], 5, False),
        (["<=", 5], 5, True),
        ([">", 0], 0, False),
        ([">=", 0], 0, True),
        ([">", 0, "<=", 5], 5, True),
        ([">", 0, "<=", 5], 0, False),
        ([">=", 0, "<", 5], 5, False),
        ([">", 0], "5", False),  # a string is never a number
        ([">", 0], True, False),  # nor is a boolean
    ],
)
def test_numeric(operand: list[Any], value: Any, expected: bool) -> None:
    assert matches({"f": [{"numeric": operand}]}, {"f": value}) is expected


def test_numeric_never_matches_a_stream_number_which_is_a_string() -> None:
    # Given a DynamoDB number (a string inside {"N": ...}), When a numeric rule targets it, Then no match
    record = stream_record("INSERT", new=item(qty={"N": "5"}))
    assert not matches({"dynamodb": {"NewImage": {"qty": {"N": [{"numeric": [">", 0]}]}}}}, record)
    assert matches({"dynamodb": {"NewImage": {"qty": {"N": ["5"]}}}}, record)
    assert matches({"dynamodb": {"SizeBytes": [{"numeric": [">", 10]}]}}, record)


# ---- $or, nesting, arrays --------------------------------------------------------------------------


def test_or_combines_whole_sub_patterns_and_ands_with_siblings() -> None:
    pattern = {"a": ["x"], "$or": [{"b": ["1"]}, {"c": {"d": ["2"]}}]}
    assert matches(pattern, {"a": "x", "b": "1"})
    assert matches(pattern, {"a": "x", "c": {"d": "2"}})
    assert not matches(pattern, {"a": "x", "b": "0"})
    assert not matches(pattern, {"a": "y", "b": "1"})


def test_or_with_the_same_field_as_a_sibling_ands_both_conditions() -> None:
    # EventBridge ANDs these (LocalStack's flattening drops the $or branch's condition).
    pattern = {"a": [{"prefix": "x"}], "$or": [{"a": ["xy"]}, {"b": ["1"]}]}
    assert matches(pattern, {"a": "xy"})
    assert not matches(pattern, {"a": "xz"})
    assert matches(pattern, {"a": "xz", "b": "1"})


def test_nested_objects_must_follow_the_event_structure() -> None:
    pattern = {"detail": {"state": ["on"]}}
    assert matches(pattern, {"detail": {"state": "on", "x": 1}})
    assert not matches(pattern, {"state": "on"})
    assert not matches(pattern, {"detail": "on"})


def test_event_arrays_match_when_any_element_matches() -> None:
    assert matches({"tags": ["b"]}, {"tags": ["a", "b"]})
    assert not matches({"tags": ["c"]}, {"tags": ["a", "b"]})
    assert matches({"tags": {"SS": [{"prefix": "eu"}]}}, {"tags": {"SS": ["us", "eu-1"]}})
    # An empty array is a missing field.
    assert matches({"tags": [{"exists": False}]}, {"tags": []})
    assert not matches({"tags": [{"exists": True}]}, {"tags": []})


def test_an_object_pattern_under_an_array_needs_one_element_to_match_it_whole() -> None:
    # Array consistency (aws/event-ruler): both conditions must hold in the same element.
    event = {"L": [{"M": {"a": {"S": "1"}}}, {"M": {"b": {"S": "2"}}}]}
    assert matches({"L": {"M": {"a": {"S": ["1"]}}}}, event)
    assert not matches({"L": {"M": {"a": {"S": ["1"]}, "b": {"S": ["2"]}}}}, event)


def test_a_repeated_key_in_pattern_json_keeps_the_last() -> None:
    # Given the same key twice in one pattern JSON (the classic mesh mistake)
    text = '{"dynamodb": {"NewImage": {"x": {"S": ["1"]}}}, "dynamodb": {"OldImage": {"x": {"S": ["2"]}}}}'
    record = stream_record("MODIFY", new=item(x={"S": "1"}), old=item(x={"S": "9"}))
    # Then only the last condition survives: the NewImage one is silently gone
    assert not filter_criteria_matches([{"Pattern": text}], record)
    assert filter_criteria_matches([{"Pattern": text}], stream_record("MODIFY", old=item(x={"S": "2"})))


# ---- the mesh filters (docs/DESIGN.md, Event filter) -----------------------------------------------

LOCAL = "eu-west-1"
MESH_FILTERS = [
    {"Pattern": json.dumps({"dynamodb": {"NewImage": {"rep_region": {"S": [LOCAL]}}}})},
    {"Pattern": json.dumps({"dynamodb": {"NewImage": {"rep_region": {"S": [{"exists": False}]}}}})},
]


def test_mesh_local_insert_passes() -> None:
    # Given an INSERT stamped with the local region, When filtered, Then it passes
    record = stream_record("INSERT", new=item(rep_region={"S": LOCAL}))
    assert filter_criteria_matches(MESH_FILTERS, record)


def test_mesh_local_modify_passes_even_when_the_old_image_was_an_echo() -> None:
    record = stream_record(
        "MODIFY", new=item(rep_region={"S": LOCAL}), old=item(rep_region={"S": "us-east-1"})
    )
    assert filter_criteria_matches(MESH_FILTERS, record)


@pytest.mark.parametrize("name", ["INSERT", "MODIFY"])
def test_mesh_echo_from_another_region_is_dropped(name: str) -> None:
    # Given a write the replicator applied on behalf of another region, Then it is filtered out
    old = item(rep_region={"S": LOCAL}) if name == "MODIFY" else None
    record = stream_record(name, new=item(rep_region={"S": "us-east-1"}), old=old)
    assert not filter_criteria_matches(MESH_FILTERS, record)


@pytest.mark.parametrize("name", ["INSERT", "MODIFY"])
def test_mesh_unstamped_write_passes(name: str) -> None:
    old = item(rep_region={"S": "us-east-1"}) if name == "MODIFY" else None
    record = stream_record(name, new=item(v={"S": "x"}), old=old)
    assert filter_criteria_matches(MESH_FILTERS, record)


@pytest.mark.parametrize("old_region", [LOCAL, "us-east-1", None])
def test_mesh_remove_passes_because_it_has_no_new_image(old_region: str | None) -> None:
    old = item(rep_region={"S": old_region}) if old_region else item()
    record = stream_record("REMOVE", old=old)
    assert filter_criteria_matches(MESH_FILTERS, record)


def test_mesh_exists_on_the_attribute_instead_of_the_type_key_is_the_known_mistake() -> None:
    # Given exists put on the attribute (an object, not a leaf), Then an echo slips through
    wrong = [{"Pattern": json.dumps({"dynamodb": {"NewImage": {"rep_region": [{"exists": False}]}}})}]
    echo = stream_record("INSERT", new=item(rep_region={"S": "us-east-1"}))
    assert filter_criteria_matches(wrong, echo)
    assert not filter_criteria_matches(MESH_FILTERS, echo)


# ---- filter_criteria_matches shapes ----------------------------------------------------------------


def test_filter_criteria_accepts_cloudformation_api_string_and_object_shapes() -> None:
    record = stream_record("INSERT", new=item())
    pattern = {"eventName": ["INSERT"]}
    assert filter_criteria_matches([{"Pattern": json.dumps(pattern)}], record)
    assert filter_criteria_matches([json.dumps(pattern)], record)
    assert filter_criteria_matches([pattern], record)
    assert filter_criteria_matches([{"Pattern": pattern}], record)
    assert filter_criteria_matches({"Filters": [{"Pattern": json.dumps(pattern)}]}, record)  # type: ignore[arg-type]
    assert not filter_criteria_matches([{"Pattern": '{"eventName": ["REMOVE"]}'}], record)


def test_no_filters_means_every_record_passes() -> None:
    assert filter_criteria_matches([], stream_record("REMOVE"))


def test_filter_criteria_reports_which_filter_is_bad() -> None:
    with pytest.raises(PatternError, match=r"Filters\[1\]: Pattern is not valid JSON"):
        filter_criteria_matches([{"Pattern": "{}"}, {"Pattern": "{nope"}], {})
    with pytest.raises(PatternError, match=r"Filters\[0\]: eventName\[0\]: unknown operator 'regex'"):
        filter_criteria_matches([{"Pattern": '{"eventName": [{"regex": "."}]}'}], {})


# ---- validation ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ([], r"pattern: must be a JSON object, got an array"),
        ({"a": "x"}, r'a: must be an object .* or an array of rules, got a string; write \["x"\]'),
        ({"a": 5}, r"a: must be an object .* got a number"),
        ({"a": []}, r"a: an empty array matches nothing"),
        ({"a": {}}, r"a: an empty object"),
        ({"a": {"b": [["x"]]}}, r"a\.b\[0\]: a rule must be a string, a number, true, false, null"),
        ({"a": [{"prefix": "x", "suffix": "y"}]}, r"a\[0\]: a rule object must have exactly one operator"),
        ({"a": [{"regex": "x"}]}, r"a\[0\]: unknown operator 'regex'; a rule must be .*\"prefix\""),
        ({"a": [{"prefix": 5}]}, r"a\[0\]\.prefix: must be a string, got a number"),
        ({"a": [{"prefix": {"nope": "x"}}]}, r'a\[0\]\.prefix: must be a string or \{"equals-ignore-case"'),
        ({"a": [{"equals-ignore-case": 1}]}, r"a\[0\]\.equals-ignore-case: must be a string"),
        ({"a": [{"exists": "true"}]}, r"a\[0\]\.exists: must be true or false, got a string"),
        ({"a": [{"numeric": [">", "5"]}]}, r"a\[0\]\.numeric\[1\]: must be a finite number"),
        ({"a": [{"numeric": ["!=", 5]}]}, r"a\[0\]\.numeric\[0\]: unknown numeric operator"),
        ({"a": [{"numeric": ["<", 5, ">", 0]}]}, r"a range must be a lower bound"),
        ({"a": [{"numeric": [">", 5, "<", 5]}]}, r"lower bound must be less than the upper bound"),
        ({"a": [{"numeric": [">", 1, "<", 5, "<", 6]}]}, r"one or two \(operator, number\) pairs"),
        ({"a": [{"numeric": [">", True]}]}, r"must be a finite number, got a boolean"),
        ({"a": [{"anything-but": None}]}, r"a\[0\]\.anything-but: must be a string, a number"),
        ({"a": [{"anything-but": True}]}, r"a\[0\]\.anything-but: must be a string, a number"),
        ({"a": [{"anything-but": ["x", None]}]}, r"anything-but\[1\]: the list may hold strings and numbers"),
        ({"a": [{"anything-but": []}]}, r"anything-but: the list must not be empty"),
        ({"a": [{"anything-but": {"exists": True}}]}, r"anything-but: an object must have exactly one of"),
        ({"a": [{"anything-but": {"prefix": ""}}]}, r"anything-but\.prefix: must not be empty"),
        ({"a": [{"anything-but": {"prefix": 5}}]}, r"anything-but\.prefix: must be a string"),
        ({"a": [{"wildcard": "a**b"}]}, r"a\[0\]\.wildcard: consecutive wildcard characters"),
        ({"a": [float("nan")]}, r"a\[0\]: numbers must be finite"),
        ({"$or": [{"a": ["x"]}]}, r"\$or: must be an array of at least two pattern objects"),
        ({"$or": [{"a": ["x"]}, ["b"]]}, r"\$or\[1\]: must be a pattern object, got an array"),
        (
            {"dynamodb": {"NewImage": {"t": {"S": [{"prefix": None}]}}}},
            r"^dynamodb\.NewImage\.t\.S\[0\]\.prefix: must be a string, got null$",
        ),
    ],
)
def test_validation_names_the_path_and_what_is_allowed(pattern: Any, message: str) -> None:
    # Given an invalid pattern, When validated (or matched), Then PatternError names the bad part
    with pytest.raises(PatternError, match=message):
        validate_pattern(pattern)
    if isinstance(pattern, dict):
        with pytest.raises(PatternError):
            matches(pattern, {})


def test_pattern_error_is_a_value_error() -> None:
    assert issubclass(PatternError, ValueError)


@pytest.mark.parametrize(
    "pattern",
    [
        {},
        {"a": ["x", 5, True, None, ""]},
        {"a": [{"prefix": ""}, {"suffix": {"equals-ignore-case": "X"}}, {"wildcard": "*x*"}]},
        {"a": [{"anything-but": [1, "x"]}, {"anything-but": {"equals-ignore-case": ["a", "b"]}}]},
        {"a": [{"numeric": [">=", -1, "<", 1.5]}], "$or": [{"b": [{"exists": True}]}, {"c": {"d": ["e"]}}]},
    ],
)
def test_valid_patterns_pass_validation(pattern: dict[str, Any]) -> None:
    validate_pattern(pattern)
