"""boto3 clients per (service, region, assumed role): the one place the functions and the tools build them.

Their settings are one of two profiles, defined here side by side (``client_config``). The functions'
clients make one attempt per call: the replicator retries itself (``adapters.with_retries``: counted,
bounded, handed off after the last attempt). The tools' clients keep the SDK's standard retries, with
longer timeouts (an operator's command may wait where a batch may not): most of their calls
(DescribeTable, verify's scans, S3, SQS, Lambda) have no retries of their own. Their conditional puts
and reads go through ``adapters.DynamoPorts`` too, so those are retried by both.

A client for a role in another account signs with credentials from ``sts:AssumeRole``. Those expire
(one hour by default) while a Lambda container, a backfill segment or an operator's command lives on,
so they are never copied into a client as static keys: each role gets a botocore session whose
credentials are botocore's refreshable kind. botocore calls AssumeRole again before the credentials
run out (from 15 minutes before their expiration on; at the latest 10 minutes before, blocking), on
whichever thread signs a request then.
"""

from __future__ import annotations

import datetime
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import CredentialProvider, CredentialResolver, DeferredRefreshableCredentials

Clock = Callable[[], datetime.datetime]


@dataclass(frozen=True)
class ClientProfile:
    """The SDK's retries and timeouts for one kind of caller."""

    retries: Mapping[str, Any]
    connect_timeout: int
    read_timeout: int


FUNCTION_CLIENTS = ClientProfile({"total_max_attempts": 1}, connect_timeout=2, read_timeout=5)
TOOL_CLIENTS = ClientProfile({"mode": "standard", "max_attempts": 3}, connect_timeout=5, read_timeout=30)


def client_config(profile: ClientProfile, *, max_pool_connections: int) -> Config:
    """The botocore configuration of every client of ``profile``'s callers."""
    return Config(
        retries=dict(profile.retries),
        max_pool_connections=max_pool_connections,
        connect_timeout=profile.connect_timeout,
        read_timeout=profile.read_timeout,
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class _AssumedRole(CredentialProvider):
    """The only provider of a role's session: its refreshable credentials."""

    METHOD = CANONICAL_NAME = "ddb-replicator-assume-role"

    def __init__(self, credentials: DeferredRefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> DeferredRefreshableCredentials:
        return self._credentials


class ClientFactory:
    """Cached, thread-safe clients; a role's clients share credentials that renew themselves.

    ``endpoint_urls`` maps a region to a local endpoint (local runs; AWS: empty). STS is called in the
    target's region, at that region's endpoint, with the base session's credentials (the function's
    execution role or the operator's profile). ``clock`` is botocore's view of now (tests move it).
    """

    def __init__(
        self,
        session: boto3.session.Session,
        config: Config,
        *,
        endpoint_urls: Mapping[str, str] | None = None,
        role_session_name: str = "ddb-replicator",
        clock: Clock = _now,
    ) -> None:
        self._session = session
        self._config = config
        self._endpoint_urls = dict(endpoint_urls or {})
        self._role_session_name = role_session_name
        self._clock = clock
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._role_sessions: dict[tuple[str, str], boto3.session.Session] = {}
        self._lock = threading.Lock()

    def client(self, service: str, region: str, role_arn: str | None = None) -> Any:
        key = (service, region, role_arn)
        with self._lock:
            if key not in self._clients:
                session = self._role_session(region, role_arn) if role_arn else self._session
                self._clients[key] = session.client(
                    service,
                    region_name=region,
                    endpoint_url=self._endpoint_urls.get(region),
                    config=self._config,
                )
            return self._clients[key]

    def credentials(self, region: str, role_arn: str) -> Any:
        """The role's credentials as the clients see them (first access calls AssumeRole)."""
        with self._lock:
            session = self._role_session(region, role_arn)
        return session.get_credentials().get_frozen_credentials()

    def _role_session(self, region: str, role_arn: str) -> boto3.session.Session:
        key = (region, role_arn)
        if key not in self._role_sessions:
            sts = self._session.client(
                "sts", region_name=region, endpoint_url=self._endpoint_urls.get(region), config=self._config
            )

            def assume_role() -> dict[str, str]:
                issued = sts.assume_role(RoleArn=role_arn, RoleSessionName=self._role_session_name)
                creds = issued["Credentials"]
                return {
                    "access_key": creds["AccessKeyId"],
                    "secret_key": creds["SecretAccessKey"],
                    "token": creds["SessionToken"],
                    "expiry_time": creds["Expiration"].isoformat(),
                }

            credentials = DeferredRefreshableCredentials(
                refresh_using=assume_role, method=_AssumedRole.METHOD, time_fetcher=self._clock
            )
            core = botocore.session.Session()
            core.register_component("credential_provider", CredentialResolver([_AssumedRole(credentials)]))
            self._role_sessions[key] = boto3.session.Session(botocore_session=core, region_name=region)
        return self._role_sessions[key]
