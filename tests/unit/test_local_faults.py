"""The local fault plan's denied roles (ddbrep/local/faults.py): the plan, STS's answer, and a proxy.

A denied role makes every region's STS answer ``sts:AssumeRole`` for it as AWS does when the role's
trust policy does not allow the caller: HTTP 403, a query-protocol ``ErrorResponse`` with the code
``AccessDenied``. The proxy test puts a proxy in front of a stub STS and calls it with botocore, as
the replicator's client factory does.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, cast
from urllib.parse import urlencode

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from ddbrep.local.control import ControlError, apply
from ddbrep.local.faults import FaultPlan, Proxy, access_denied_error, assume_role_denial
from replicator.client_factory import ClientFactory
from replicator.core.errors import ErrorKind, classify_error

ROLE = "arn:aws:iam::123456789012:role/orders-writer"
OTHER = "arn:aws:iam::123456789012:role/other-writer"
REGION = "eu-west-1"
NOT_AUTHORIZED = (
    "User: arn:aws:sts::123456789012:assumed-role/ddbrep-local-caller/ddbrep-local-caller "
    f"is not authorized to perform: sts:AssumeRole on resource: {ROLE}"
)


def assume_role_body(role: str, action: str = "AssumeRole") -> bytes:
    return urlencode(
        {"Action": action, "Version": "2011-06-15", "RoleArn": role, "RoleSessionName": "s"}
    ).encode()


def test_a_denied_role_is_denied_until_its_time_or_a_heal() -> None:
    plan = FaultPlan(["us-east-1", REGION])
    plan.deny_role(ROLE, 60)
    assert plan.denies(ROLE, 0.0) and not plan.denies(OTHER, 0.0)
    assert not plan.denies(ROLE, plan.denied_roles[ROLE])  # its time has passed
    plan.heal(REGION)  # any heal: the role is denied by every region
    assert not plan.denies(ROLE, 0.0)
    with pytest.raises(ValueError, match="not an IAM role ARN"):
        plan.deny_role("orders-writer", 60)


def test_only_assume_role_for_the_denied_role_is_answered_access_denied() -> None:
    plan = FaultPlan(["us-east-1", REGION])
    assert assume_role_denial(plan, "sts", assume_role_body(ROLE), 0.0) is None  # nothing denied yet
    plan.deny_role(ROLE, 60)
    assert assume_role_denial(plan, "sts", assume_role_body(ROLE), 0.0) == access_denied_error(ROLE)
    assert assume_role_denial(plan, "sts", assume_role_body(OTHER), 0.0) is None
    assert assume_role_denial(plan, "sts", assume_role_body(ROLE, "GetCallerIdentity"), 0.0) is None
    assert assume_role_denial(plan, "dynamodb", assume_role_body(ROLE), 0.0) is None
    assert assume_role_denial(plan, "sts", assume_role_body(ROLE), plan.denied_roles[ROLE]) is None


def test_the_control_request_denies_the_role_and_refuses_what_is_not_a_role() -> None:
    plan = FaultPlan(["us-east-1", REGION])
    cloud = cast(Any, SimpleNamespace(faults=plan, region_names=plan.regions, stream_pollers=[]))
    reply = apply(cloud, {"fault": "deny-role", "role_arn": ROLE, "seconds": 30})
    assert reply == f"sts:AssumeRole for {ROLE} answers AccessDenied in every region for 30 s"
    assert plan.denies(ROLE, 0.0)
    with pytest.raises(ControlError, match="not an IAM role ARN: 'arn:aws:iam::123456789012:user/u'"):
        apply(cloud, {"fault": "deny-role", "role_arn": "arn:aws:iam::123456789012:user/u", "seconds": 30})
    apply(cloud, {"fault": "heal"})
    assert not plan.denies(ROLE, 0.0)


class _StubSts(BaseHTTPRequestHandler):
    """Answers every AssumeRole with credentials (the engine's STS, which allows any caller)."""

    protocol_version = "HTTP/1.1"
    answered = 0

    def log_message(self, format: str, *args: object) -> None:
        return

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        type(self).answered += 1
        payload = (
            '<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
            "<Credentials><AccessKeyId>ASIALOCAL</AccessKeyId><SecretAccessKey>secret</SecretAccessKey>"
            "<SessionToken>token</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>"
            f"<AssumedRoleUser><AssumedRoleId>AROA:s</AssumedRoleId><Arn>{ROLE}/s</Arn></AssumedRoleUser>"
            "</AssumeRoleResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata>"
            "</AssumeRoleResponse>"
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


@pytest.fixture
def proxied_sts() -> Iterator[tuple[FaultPlan, str]]:
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), _StubSts)
    thread = threading.Thread(target=upstream.serve_forever, daemon=True)
    thread.start()
    plan = FaultPlan(["us-east-1", REGION])
    proxy = Proxy(f"http://127.0.0.1:{upstream.server_address[1]}", plan=plan).start()
    try:
        yield plan, proxy.url
    finally:
        proxy.stop()
        upstream.shutdown()
        upstream.server_close()


def session() -> boto3.session.Session:
    return boto3.session.Session(aws_access_key_id="testing", aws_secret_access_key="testing")


def test_the_proxy_answers_a_denied_assume_role_as_sts_does(proxied_sts: tuple[FaultPlan, str]) -> None:
    plan, url = proxied_sts
    sts = session().client("sts", region_name=REGION, endpoint_url=url)
    # Given the role denied
    plan.deny_role(ROLE, 60)
    answered = _StubSts.answered
    # When it is assumed, Then STS's AccessDenied (HTTP 403), and the engine was not asked
    with pytest.raises(ClientError) as raised:
        sts.assume_role(RoleArn=ROLE, RoleSessionName="rehearsal")
    response = raised.value.response
    assert response["Error"] == {"Type": "Sender", "Code": "AccessDenied", "Message": NOT_AUTHORIZED}
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert plan.denied_assume_roles == 1 and _StubSts.answered == answered
    # And another role is assumed as before, and the denied one again once healed
    assert (
        sts.assume_role(RoleArn=OTHER, RoleSessionName="rehearsal")["Credentials"]["AccessKeyId"]
        == "ASIALOCAL"
    )
    plan.heal()
    assert (
        sts.assume_role(RoleArn=ROLE, RoleSessionName="rehearsal")["Credentials"]["AccessKeyId"]
        == "ASIALOCAL"
    )
    assert _StubSts.answered == answered + 2


def test_a_factory_client_of_a_denied_role_fails_with_a_configuration_error(
    proxied_sts: tuple[FaultPlan, str],
) -> None:
    plan, url = proxied_sts
    plan.deny_role(ROLE, 60)
    factory = ClientFactory(session(), Config(retries={"total_max_attempts": 1}), endpoint_urls={REGION: url})
    # When the replicator's client writes with the role's credentials
    with pytest.raises(ClientError) as raised:
        factory.client("dynamodb", REGION, ROLE).put_item(TableName="orders", Item={"pk": {"S": "a"}})
    # Then the write fails with STS's error, which the replicator hands off (never dead-letters)
    error = raised.value.response
    assert error["Error"]["Code"] == "AccessDenied"
    assert classify_error(error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) is (
        ErrorKind.CONFIGURATION
    )
    assert plan.denied_assume_roles >= 1


def test_a_client_that_goes_away_mid_request_is_no_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    import socket
    import struct

    proxy = Proxy("http://127.0.0.1:9").start()  # upstream never reached: the client resets first
    try:
        host, port = proxy.url.removeprefix("http://").split(":")
        for _ in range(3):
            client = socket.create_connection((host, int(port)))
            client.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\npartial")
            # close with RST (SO_LINGER 0), as a timed-out SDK or a cut link does
            client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            client.close()
        threading.Event().wait(0.5)
    finally:
        proxy.stop()
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "Exception occurred" not in captured.err
