"""Connections of the operator tools (backfill, verify, redrive) and their clear errors.

Either AWS (a named profile or the standard credential chain) or simulated regions (one endpoint per
region, ``--endpoint us-east-1=http://127.0.0.1:PORT``). Every failure an operator can fix is a
:class:`ToolError` whose message says what to fix.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, NoRegionError

import ddbrep  # noqa: F401  (puts the Lambda asset on the import path)
from replicator.adapters import describe_error
from replicator.client_factory import TOOL_CLIENTS, ClientFactory, client_config

LOCAL_CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
_ACCESS_DENIED = {
    "AccessDeniedException",
    "AccessDenied",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredTokenException",
    "ExpiredToken",
}


class Clients(Protocol):
    """What the tools need of a connection (tests wrap it to count or break calls)."""

    def dynamodb(self, region: str, role_arn: str | None = None) -> Any: ...


class ToolError(Exception):
    """A fault the operator can fix (the message says how); the CLI prints it and exits with 2."""


def parse_endpoints(values: Iterable[str] | None) -> dict[str, str]:
    """``["us-east-1=http://127.0.0.1:5000", ...]`` -> ``{"us-east-1": "http://127.0.0.1:5000"}``."""
    endpoints: dict[str, str] = {}
    for value in values or ():
        region, sep, url = value.partition("=")
        if not sep or not region or not url.startswith(("http://", "https://")):
            raise ToolError(
                f"--endpoint {value!r}: expected REGION=URL, e.g. us-east-1=http://127.0.0.1:5000"
            )
        endpoints[region.strip()] = url.strip()
    return endpoints


@dataclass
class Connection:
    """boto3 clients per (service, region, role), on one session; thread-safe."""

    profile: str | None = None
    endpoints: Mapping[str, str] = field(default_factory=dict)
    max_pool_connections: int = 32
    _session: Any = None
    _factory: ClientFactory | None = None

    def __post_init__(self) -> None:
        try:
            self._session = boto3.session.Session(profile_name=self.profile)
        except BotoCoreError as err:  # ProfileNotFound
            raise ToolError(f"{err}: check --profile / AWS_PROFILE (aws configure list-profiles)") from None
        # The functions' factory: a role's credentials refresh during a long backfill or verify.
        self._factory = ClientFactory(
            self.session(),
            client_config(TOOL_CLIENTS, max_pool_connections=self.max_pool_connections),
            endpoint_urls=self.endpoints,
            role_session_name="ddbrep-tools",
        )

    def client(self, service: str, region: str, role_arn: str | None = None) -> Any:
        assert self._factory is not None
        if role_arn:
            try:  # fail here, naming the role, rather than on the first call that signs with it
                self._factory.credentials(region, role_arn)
            except (ClientError, BotoCoreError) as err:
                raise explain(err, f"sts:AssumeRole on {role_arn}", region) from None
        return self._factory.client(service, region, role_arn)

    def dynamodb(self, region: str, role_arn: str | None = None) -> Any:
        return self.client("dynamodb", region, role_arn)

    def session(self) -> Any:
        """The boto3 session (with placeholder credentials when only simulated regions are used)."""
        if self.endpoints and self._session.get_credentials() is None:
            return boto3.session.Session(**LOCAL_CREDENTIALS)
        return self._session


def explain(err: BaseException, action: str, region: str, resource: str = "") -> ToolError:
    """A ToolError naming what failed and what to fix."""
    if isinstance(err, NoCredentialsError):
        return ToolError(
            f"no AWS credentials for {action} in {region}: pass --profile (or set AWS_PROFILE), "
            "or use --endpoint REGION=URL for simulated regions"
        )
    if isinstance(err, NoRegionError):
        return ToolError(f"no region for {action}: pass the region explicitly")
    code, _status, message = describe_error(err)
    where = f"{resource} in {region}" if resource else region
    if code == "ResourceNotFoundException" and action.startswith("lambda:"):
        return ToolError(
            f"function {resource} not found in {region}: check --function and --region (the replicator "
            f"is <table>-replicator, in the source region). Simulated regions have no Lambda API: for "
            f"`local up` pass --local-state <its --log-dir> (default out/local); otherwise --env-file "
            f"with the function's REP_* variables ({message})"
        )
    if code == "ResourceNotFoundException":
        return ToolError(
            f"table {resource} not found in {region}: create it (deploy the region's stack) or fix the "
            f"table name / region flags ({message})"
        )
    if code in _ACCESS_DENIED:
        return ToolError(
            f"access denied for {action} on {where}: grant the caller's role {action} on that resource, "
            f"or use another --profile ({code}: {message})"
        )
    if code is None:
        return ToolError(f"{action} on {where}: no answer ({message}); check the endpoint / network")
    return ToolError(f"{action} on {where} failed: {code}: {message}")


@dataclass(frozen=True)
class TableInfo:
    region: str
    name: str
    key_schema: tuple[tuple[str, str, str], ...]  # (name, HASH|RANGE, S|N|B), partition key first
    item_count: int

    @property
    def key_names(self) -> list[str]:
        return [name for name, _kind, _type in self.key_schema]

    def describe_keys(self) -> str:
        return ", ".join(f"{name} {kind} {type_}" for name, kind, type_ in self.key_schema)


def describe_table(conn: Clients, region: str, table: str, role_arn: str | None = None) -> TableInfo:
    try:
        description = conn.dynamodb(region, role_arn).describe_table(TableName=table)["Table"]
    except (ClientError, BotoCoreError) as err:
        raise explain(err, "dynamodb:DescribeTable", region, table) from None
    types = {a["AttributeName"]: a["AttributeType"] for a in description.get("AttributeDefinitions", [])}
    schema = sorted(description["KeySchema"], key=lambda k: 0 if k["KeyType"] == "HASH" else 1)
    return TableInfo(
        region=region,
        name=table,
        key_schema=tuple(
            (k["AttributeName"], k["KeyType"], types.get(k["AttributeName"], "?")) for k in schema
        ),
        item_count=int(description.get("ItemCount", 0)),
    )


def check_same_keys(tables: Sequence[TableInfo]) -> None:
    """Every table must have the first one's key schema, or items cannot be copied between them."""
    first = tables[0]
    for other in tables[1:]:
        if other.key_schema != first.key_schema:
            raise ToolError(
                f"key schema differs: {first.name} in {first.region} has [{first.describe_keys()}], "
                f"{other.name} in {other.region} has [{other.describe_keys()}]; a replica must have the "
                "same partition and sort key (names and types): recreate it with the source's key schema"
            )
