"""Small readers over synthesized CloudFormation templates (plain dicts: fast, no jsii)."""

from __future__ import annotations

from typing import Any

PSEUDO = {"AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


def render(value: Any) -> Any:
    """Intrinsics to readable strings: Join is joined, Ref X -> <X>, GetAtt X.Y -> <X.Y>."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, arg),) = value.items()
        if key == "Ref":
            return PSEUDO.get(arg, f"<{arg}>")
        if key == "Fn::GetAtt":
            return f"<{arg[0]}.{arg[1]}>"
        if key == "Fn::Join":
            return arg[0].join(str(render(part)) for part in arg[1])
    if isinstance(value, dict):
        return {k: render(v) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v) for v in value]
    return value


def function_named(template: dict[str, Any], name: str) -> tuple[str, dict[str, Any]]:
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] == "AWS::Lambda::Function" and resource["Properties"].get("FunctionName") == name:
            return logical_id, resource
    raise AssertionError(f"no function named {name}")


def role_statements(template: dict[str, Any], function_name: str) -> list[dict[str, Any]]:
    """Every policy statement of a function's execution role, rendered, one action list each."""
    _, function = function_named(template, function_name)
    role_id = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = []
    for resource in template["Resources"].values():
        if resource["Type"] != "AWS::IAM::Policy":
            continue
        if {"Ref": role_id} not in resource["Properties"]["Roles"]:
            continue
        for statement in resource["Properties"]["PolicyDocument"]["Statement"]:
            rendered = render(statement)
            for key in ("Action", "Resource"):
                if isinstance(rendered.get(key), str):
                    rendered[key] = [rendered[key]]
            statements.append(rendered)
    role = template["Resources"][role_id]["Properties"]
    assert not role.get("ManagedPolicyArns"), "execution roles carry no managed policies"
    return statements


def allowed(statements: list[dict[str, Any]]) -> set[tuple[str, str]]:
    """(action, resource) pairs the statements allow."""
    return {
        (action, resource)
        for s in statements
        if s["Effect"] == "Allow"
        for action in s["Action"]
        for resource in s["Resource"]
    }


def resources_for(statements: list[dict[str, Any]], action: str) -> set[str]:
    return {resource for act, resource in allowed(statements) if act == action}
