"""Cross-region realism outside the handler: a small threaded HTTP proxy per region pair.

A function in region S reaches region T through the proxy of the link (S, T): its REP_ENDPOINT_URLS
point at the proxies, so the handler stays unmodified. Each link adds its latency to every request
and applies the faults injected into it: unreachable for a while (the connection is closed without
an answer, as a network failure looks to the SDK) and a throttling rate (DynamoDB requests answered
with ThrottlingException).

Every proxy, and each region's gateway (the endpoint clients use), also rejects requests that AWS
rejects but the local engine accepts (see ``aws_rejection``), among them requests signed with
assumed-role credentials past their expiration (``CredentialLedger``: moto never expires them). A role
denied by the plan (``FaultPlan.deny_role``) is refused by every region's STS, gateways and links alike:
``sts:AssumeRole`` for it answers AccessDenied, as when the role's trust policy no longer allows the caller.
"""

from __future__ import annotations

import calendar
import http.client
import json
import logging
import random
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from xml.sax.saxutils import escape

from ddbrep.local.limits import (
    ITEM_TOO_LARGE_MESSAGE,
    MAX_ITEM_BYTES,
    SQS_MESSAGE_BYTES_STRICT,
    item_size_bytes,
)
from ddbrep.local.regions import LOOPBACK

LOG = logging.getLogger("ddbrep.local")

DEFAULT_LATENCY_MS = 70.0
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
}
_DYNAMODB_TARGET = "DynamoDB_20120810."
_SQS_TARGET = "AmazonSQS."
_MAX_BATCH_WRITE_ITEMS = 25
_SIGNING_SCOPE = re.compile(r"Credential=([^/,\s]+)/\d{8}/[^/]+/([^/]+)/aws4_request")
ROLE_ARN = re.compile(r"arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]+")
_EXPIRATION = re.compile(rb"<Expiration>([^<]+)</Expiration>")
_ACCESS_KEY = re.compile(rb"<AccessKeyId>([^<]+)</AccessKeyId>")
EXPIRED_TOKEN_MESSAGE = "The security token included in the request is expired"
# The local engine has no caller identity to name: AWS names the caller's own assumed-role session
# (a function's execution role); the local answer names this placeholder in the caller's account.
LOCAL_CALLER = "ddbrep-local-caller"
_STS_NAMESPACE = "https://sts.amazonaws.com/doc/2011-06-15/"


@dataclass
class Link:
    """The network between a source region and a target region, as the proxy applies it."""

    source: str
    target: str
    latency_ms: float = 0.0
    unreachable_until: float = 0.0
    throttle_rate: float = 0.0
    throttle_until: float = 0.0
    requests: int = 0
    dropped: int = 0
    throttled: int = 0
    # What crossed the link (request line + headers + body each way): the inter-region transfer.
    bytes_sent: int = 0
    bytes_received: int = 0
    # table name -> until when DynamoDB requests for it answer ResourceNotFoundException (the table
    # "disappeared" for the other regions' replicators; the region's own gateway still sees it)
    hidden_tables: dict[str, float] = field(default_factory=dict)

    def unreachable(self, now: float) -> bool:
        return now < self.unreachable_until

    def hides(self, table: str, now: float) -> bool:
        return now < self.hidden_tables.get(table, 0.0)

    def throttles(self, now: float, rng: random.Random) -> bool:
        return now < self.throttle_until and rng.random() < self.throttle_rate


class FaultPlan:
    """Latency and faults per (source region, target region) link; changed while the runtime runs."""

    def __init__(
        self, regions: list[str], latency_ms: float = DEFAULT_LATENCY_MS, seed: int | None = None
    ) -> None:
        self.regions = list(regions)
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.links: dict[tuple[str, str], Link] = {
            (s, t): Link(s, t, latency_ms if s != t else 0.0) for s in regions for t in regions
        }
        # role ARN -> until when every region's STS refuses sts:AssumeRole for it (AccessDenied)
        self.denied_roles: dict[str, float] = {}
        self.denied_assume_roles = 0

    def link(self, source: str, target: str) -> Link:
        return self.links[(source, target)]

    def add_region(self, region: str, latency_ms: float) -> None:
        """A region deployed while the runtime runs: its links to and from every region, at ``latency_ms``."""
        regions = [*self.regions, region]
        added = {
            (s, t): Link(s, t, latency_ms if s != t else 0.0)
            for s in regions
            for t in regions
            if region in (s, t)
        }
        self.links = {**self.links, **added}  # one assignment: the proxies read the dict concurrently
        self.regions = regions

    def set_latency(self, source: str, target: str, latency_ms: float, *, both_ways: bool = True) -> None:
        self.links[(source, target)].latency_ms = latency_ms
        if both_ways:
            self.links[(target, source)].latency_ms = latency_ms

    def isolate(self, region: str, seconds: float) -> None:
        """Cut ``region`` off from every other region (both ways) for ``seconds``; its own traffic flows."""
        until = time.time() + seconds
        for (source, target), link in self.links.items():
            if source != target and region in (source, target):
                link.unreachable_until = until

    def heal(self, region: str | None = None) -> None:
        """Undo the faults of ``region``'s links (every link: None), and every denied role (a role is
        refused by every region's STS, so healing any region allows it again)."""
        for (source, target), link in self.links.items():
            if region is None or region in (source, target):
                link.unreachable_until = 0.0
                link.throttle_until = 0.0
                link.hidden_tables.clear()
        self.denied_roles = {}

    def deny_role(self, role_arn: str, seconds: float) -> None:
        """Every region's STS answers ``sts:AssumeRole`` for ``role_arn`` with AccessDenied (``seconds``)."""
        if not ROLE_ARN.fullmatch(role_arn):
            raise ValueError(f"not an IAM role ARN: {role_arn!r} (arn:aws:iam::123456789012:role/NAME)")
        self.denied_roles = {**self.denied_roles, role_arn: time.time() + seconds}

    def denies(self, role_arn: str, now: float) -> bool:
        return now < self.denied_roles.get(role_arn, 0.0)

    def count_denied(self) -> None:
        with self._lock:
            self.denied_assume_roles += 1

    def hide_table(self, region: str, table: str, seconds: float) -> None:
        """Make ``table`` of ``region`` answer ResourceNotFoundException to every other region."""
        until = time.time() + seconds
        for (source, dest), link in self.links.items():
            if dest == region and source != dest:
                link.hidden_tables[table] = until

    def throttle(self, target: str, rate: float, seconds: float) -> None:
        """Answer a share ``rate`` of DynamoDB requests to ``target`` (from other regions) with throttling."""
        until = time.time() + seconds
        for (source, dest), link in self.links.items():
            if dest == target and source != dest:
                link.throttle_rate, link.throttle_until = rate, until

    def draw(self) -> random.Random:
        return self._rng


def _written_items(operation: str, request: Any) -> list[Any]:
    """The full items a DynamoDB write request puts (UpdateItem: moto checks the resulting item)."""
    if operation == "PutItem":
        return [request.get("Item") or {}]
    if operation == "BatchWriteItem":
        return [
            (entry.get("PutRequest") or {}).get("Item") or {}
            for entries in (request.get("RequestItems") or {}).values()
            for entry in entries
            if "PutRequest" in entry
        ]
    if operation == "TransactWriteItems":
        return [
            (entry.get("Put") or {}).get("Item") or {}
            for entry in request.get("TransactItems") or []
            if "Put" in entry
        ]
    return []


def _sqs_message_bytes(entry: Any) -> int:
    """SQS counts the body and every message attribute (name, type and value) toward the limit."""
    size = len(str(entry.get("MessageBody", "")).encode("utf-8"))
    for name, attribute in (entry.get("MessageAttributes") or {}).items():
        size += len(name.encode("utf-8")) + len(str(attribute.get("DataType", "")).encode("utf-8"))
        for part in ("StringValue", "BinaryValue"):
            if part in attribute:
                size += len(str(attribute[part]).encode("utf-8"))
    return size


@dataclass
class CredentialLedger:
    """The assumed-role credentials one region's STS handed out, and AWS's rule that they expire.

    Every proxy in front of the region (its gateway and each link into it) records the AccessKeyId and
    Expiration of each AssumeRole answer and refuses a later request signed with that key once the
    expiration has passed, with the error AWS returns. ``session_seconds`` compresses time: each
    AssumeRole answer then expires that many seconds after it is issued (None: as the engine says).
    """

    session_seconds: float | None = None
    expirations: dict[str, float] = field(default_factory=dict)
    rejected: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def issued(self, payload: bytes, now: float) -> bytes:
        """Record an AssumeRole answer (rewriting its Expiration when time is compressed)."""
        key, expiration = _ACCESS_KEY.search(payload), _EXPIRATION.search(payload)
        if key is None or expiration is None:
            return payload
        if self.session_seconds is None:
            issued = time.strptime(expiration.group(1).decode()[:19], "%Y-%m-%dT%H:%M:%S")
            expires = float(calendar.timegm(issued))
        else:
            expires = float(int(now + self.session_seconds))  # whole seconds, as the answer states it
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expires)).encode()
            payload = _EXPIRATION.sub(b"<Expiration>" + stamp + b"</Expiration>", payload, count=1)
        with self._lock:
            self.expirations[key.group(1).decode()] = float(expires)
        return payload

    def is_expired(self, access_key: str, now: float) -> bool:
        expires = self.expirations.get(access_key)
        return expires is not None and now >= expires

    def refuse(self) -> None:
        with self._lock:
            self.rejected += 1


def _signing(headers: Any) -> tuple[str, str]:
    """(access key, service) of a SigV4-signed request; empty strings when it is not signed."""
    match = _SIGNING_SCOPE.search(headers.get("Authorization", "") or "")
    return (match.group(1), match.group(2)) if match else ("", "")


def expired_token_error(service: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """AWS's answer to a request signed with expired credentials, in the service's protocol."""
    if service in ("dynamodb", "sqs"):
        body = {"__type": "com.amazon.coral.service#ExpiredTokenException", "message": EXPIRED_TOKEN_MESSAGE}
        headers = [("Content-Type", "application/x-amz-json-1.0")]
        if service == "sqs":  # SQS speaks JSON but keeps its query-protocol error code
            headers.append(("x-amzn-query-error", "ExpiredToken;Sender"))
        return 400, headers, json.dumps(body).encode()
    xml = (
        "<ErrorResponse><Error><Type>Sender</Type><Code>ExpiredToken</Code>"
        f"<Message>{EXPIRED_TOKEN_MESSAGE}</Message></Error><RequestId>local</RequestId></ErrorResponse>"
    )
    return 400, [("Content-Type", "text/xml")], xml.encode()


def _is_assume_role(service: str, body: bytes) -> bool:
    return service == "sts" and parse_qs(body.decode(errors="replace")).get("Action") == ["AssumeRole"]


def assume_role_denial(
    plan: FaultPlan, service: str, body: bytes, now: float
) -> tuple[int, list[tuple[str, str]], bytes] | None:
    """STS's AccessDenied answer to an AssumeRole request for a role the plan denies (None: not denied)."""
    if not plan.denied_roles or not _is_assume_role(service, body):
        return None
    request = parse_qs(body.decode(errors="replace"))
    role = (request.get("RoleArn") or [""])[0]
    if not plan.denies(role, now):
        return None
    return access_denied_error(role)


def access_denied_message(role_arn: str) -> str:
    """STS's message for a caller the role's trust policy does not allow (the caller: a placeholder)."""
    match = ROLE_ARN.fullmatch(role_arn)
    account = match.group(1) if match else "000000000000"
    caller = f"arn:aws:sts::{account}:assumed-role/{LOCAL_CALLER}/{LOCAL_CALLER}"
    return f"User: {caller} is not authorized to perform: sts:AssumeRole on resource: {role_arn}"


def access_denied_error(role_arn: str) -> tuple[int, list[tuple[str, str]], bytes]:
    """AWS STS's answer when the role's trust policy does not allow the caller (query protocol, 403)."""
    message = access_denied_message(role_arn)
    xml = (
        f'<ErrorResponse xmlns="{_STS_NAMESPACE}"><Error><Type>Sender</Type><Code>AccessDenied</Code>'
        f"<Message>{escape(message)}</Message></Error><RequestId>local</RequestId></ErrorResponse>"
    )
    return 403, [("Content-Type", "text/xml")], xml.encode()


def capped_visibility(headers: Any, body: bytes, cap: int) -> bytes:
    """A ChangeMessageVisibility(Batch) request with its timeouts capped (local time compression)."""
    operation = (headers.get("X-Amz-Target", "") or "").removeprefix(_SQS_TARGET)
    if operation not in ("ChangeMessageVisibility", "ChangeMessageVisibilityBatch"):
        return body
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return body
    for entry in [request, *request.get("Entries", [])]:
        if isinstance(entry.get("VisibilityTimeout"), int):
            entry["VisibilityTimeout"] = min(entry["VisibilityTimeout"], cap)
    return json.dumps(request).encode()


def aws_rejection(
    method: str,
    path: str,
    headers: Any,
    body: bytes,
    sqs_max_message_bytes: int = SQS_MESSAGE_BYTES_STRICT,
) -> tuple[int, dict[str, str]] | None:
    """An error AWS would return for a request the local engine would accept (or be broken by)."""
    target = headers.get("X-Amz-Target", "") or ""
    if target.startswith(_SQS_TARGET):
        return _sqs_rejection(target[len(_SQS_TARGET) :], body, sqs_max_message_bytes)
    if target.startswith(_DYNAMODB_TARGET):
        operation = target[len(_DYNAMODB_TARGET) :]
        try:
            request = json.loads(body or b"{}")
        except ValueError:
            return None
        for item in _written_items(operation, request):
            if isinstance(item, dict) and item_size_bytes(item) > MAX_ITEM_BYTES:
                return 400, _dynamodb_error("ValidationException", ITEM_TOO_LARGE_MESSAGE)
        if operation == "BatchWriteItem":
            count = sum(len(v) for v in (request.get("RequestItems") or {}).values())
            if count > _MAX_BATCH_WRITE_ITEMS:
                return 400, _dynamodb_error(
                    "ValidationException",
                    f"Too many items requested for the BatchWriteItem call (got {count}, at most 25)",
                )
        if (
            operation == "UpdateTable"
            and (request.get("StreamSpecification") or {}).get("StreamEnabled") is False
        ):
            return 400, _dynamodb_error(
                "ValidationException",
                "Disabling a stream is refused by the local runtime: the local engine breaks the table "
                "(later writes fail with HTTP 500). See docs/LOCAL.md.",
            )
    if method == "POST" and path.rstrip("/").endswith("/event-source-mappings"):
        return 400, {
            "Type": "User",
            "message": "Event source mappings are not created in the local engine (it empties the stream); "
            "the local runtime runs them from the synthesized template. See docs/LOCAL.md.",
        }
    return None


def _sqs_rejection(operation: str, body: bytes, limit: int) -> tuple[int, dict[str, str]] | None:
    if operation not in ("SendMessage", "SendMessageBatch"):
        return None
    try:
        request = json.loads(body or b"{}")
    except ValueError:
        return None
    entries = [request] if operation == "SendMessage" else list(request.get("Entries") or [])
    sizes = [_sqs_message_bytes(entry) for entry in entries]
    if any(size > limit for size in sizes):
        message = f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes."
        return 400, {"__type": "com.amazonaws.sqs#InvalidParameterValue", "message": message}
    if operation == "SendMessageBatch" and sum(sizes) > limit:
        message = f"Batch requests cannot be longer than {limit} bytes. You have sent {sum(sizes)} bytes."
        return 400, {"__type": "com.amazonaws.sqs#BatchRequestTooLong", "message": message}
    return None


def _hidden_table_rejection(
    link: Link, headers: Any, body: bytes, now: float
) -> tuple[int, dict[str, str]] | None:
    if not (headers.get("X-Amz-Target") or "").startswith(_DYNAMODB_TARGET):
        return None
    try:
        table = json.loads(body or b"{}").get("TableName")
    except (ValueError, AttributeError):
        return None
    if isinstance(table, str) and link.hides(table, now):
        return 400, _dynamodb_error("ResourceNotFoundException", "Requested resource not found")
    return None


def _dynamodb_error(code: str, message: str) -> dict[str, str]:
    return {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": message}


def _message_bytes(first_line: str, headers: Iterable[tuple[str, str]], body: bytes) -> int:
    """An HTTP/1.1 message's size on the wire (without TLS framing)."""
    return len(first_line) + 2 + sum(len(k) + len(v) + 4 for k, v in headers) + 2 + len(body)


class _Proxy(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-request (its SDK timed out, or a cut link closed it) is routine
        under faults: not a traceback on stderr, as socketserver prints by default. Anything else is
        logged with its traceback."""
        error = sys.exc_info()[1]
        if isinstance(error, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
            return
        LOG.warning("proxy %s: request from %s failed", self.server_address, client_address, exc_info=True)

    def __init__(
        self,
        upstream: str,
        link: Link | None,
        plan: FaultPlan | None,
        sqs_max_message_bytes: int = SQS_MESSAGE_BYTES_STRICT,
        credentials: CredentialLedger | None = None,
        max_visibility_timeout: int | None = None,
    ) -> None:
        super().__init__((LOOPBACK, 0), _ProxyHandler)
        self.sqs_max_message_bytes = sqs_max_message_bytes
        self.credentials = credentials
        self.max_visibility_timeout = max_visibility_timeout
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or LOOPBACK
        self.upstream_port = parts.port or 80
        self.link = link
        self.plan = plan
        self.local = threading.local()


class _ProxyHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Proxy

    def log_message(self, format: str, *args: Any) -> None:  # quiet: one line per request is noise
        return

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return b"".join(self._chunks())
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _chunks(self) -> Iterator[bytes]:
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                    pass
                return
            yield self.rfile.read(size)
            self.rfile.readline()

    def _forward(self) -> None:
        body = self._body()
        server = self.server
        link = server.link
        now = time.time()
        if link is not None:
            link.requests += 1
            link.bytes_sent += _message_bytes(self.requestline, self.headers.items(), body)
            if link.unreachable(now):
                link.dropped += 1
                self.close_connection = True  # no answer: the SDK sees a closed connection
                return
            if link.latency_ms:
                time.sleep(link.latency_ms / 1000.0)
        access_key, service = _signing(self.headers)
        ledger = server.credentials
        if ledger is not None and ledger.is_expired(access_key, time.time()):
            ledger.refuse()
            self._reply(*expired_token_error(service))
            return
        plan = server.plan
        denial = assume_role_denial(plan, service, body, now) if plan is not None else None
        if plan is not None and denial is not None:
            plan.count_denied()
            self._reply(*denial)
            return
        if server.max_visibility_timeout is not None:
            body = capped_visibility(self.headers, body, server.max_visibility_timeout)
        rejection = aws_rejection(self.command, self.path, self.headers, body, server.sqs_max_message_bytes)
        if rejection is None and link is not None and link.hidden_tables:
            rejection = _hidden_table_rejection(link, self.headers, body, now)
        if rejection is None and link is not None and server.plan is not None:
            is_dynamodb = (self.headers.get("X-Amz-Target") or "").startswith(_DYNAMODB_TARGET)
            if is_dynamodb and link.throttles(now, server.plan.draw()):
                link.throttled += 1
                rejection = (
                    400,
                    _dynamodb_error(
                        "ThrottlingException", "Rate of requests exceeds the allowed throughput."
                    ),
                )
        if rejection is not None:
            status, document = rejection
            self._reply(
                status, [("Content-Type", "application/x-amz-json-1.0")], json.dumps(document).encode()
            )
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["Content-Length"] = str(len(body))
        for attempt in range(2):  # a kept-alive upstream connection may have been closed by the engine
            connection = self._upstream(fresh=attempt > 0)
            try:
                connection.request(self.command, self.path, body=body, headers=headers)
                response = connection.getresponse()
                payload = response.read()
                break
            except (http.client.HTTPException, OSError):
                connection.close()
                if attempt:
                    self.close_connection = True
                    return
        response_headers = [
            (k, v) for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP | {"content-length"}
        ]
        if ledger is not None and response.status == 200 and _is_assume_role(service, body):
            payload = ledger.issued(payload, time.time())
        if link is not None:
            status_line = f"HTTP/1.1 {response.status} {response.reason}"
            link.bytes_received += _message_bytes(status_line, response.getheaders(), payload)
        self._reply(response.status, response_headers, payload)

    def _upstream(self, fresh: bool) -> http.client.HTTPConnection:
        local = self.server.local
        connection = getattr(local, "connection", None)
        if connection is None or fresh:
            connection = http.client.HTTPConnection(
                self.server.upstream_host, self.server.upstream_port, timeout=60
            )
            local.connection = connection
        return connection

    def _reply(self, status: int, headers: list[tuple[str, str]], payload: bytes) -> None:
        self.send_response_only(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward


class Proxy:
    """A running proxy in front of one upstream endpoint (threads of this process)."""

    def __init__(
        self,
        upstream: str,
        link: Link | None = None,
        plan: FaultPlan | None = None,
        *,
        sqs_max_message_bytes: int = SQS_MESSAGE_BYTES_STRICT,
        credentials: CredentialLedger | None = None,
        max_visibility_timeout: int | None = None,
    ) -> None:
        self._server = _Proxy(
            upstream, link, plan, sqs_max_message_bytes, credentials, max_visibility_timeout
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.name = f"proxy:{link.source}->{link.target}" if link else f"gateway:{upstream}"

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Proxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
