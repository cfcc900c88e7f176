"""Faults on a running ``local up``, asked for from another shell: a control directory it watches.

``python -m ddbrep local fault --log-dir out/local isolate eu-west-1 --seconds 60`` writes a request
file under ``<log dir>/control/``; the running cloud (``LocalCloud`` with a log directory) applies it
and writes a reply, which the command prints. Files, not a socket: nothing listens on any port, and
only who can write the log directory can ask.

The faults are the situations of docs/OPERATIONS.md, to rehearse them (docs/LOCAL.md):

- ``isolate REGION``: the region and every other cannot reach each other (writes are handed off);
- ``throttle REGION``: a share of the other regions' DynamoDB requests to it are throttled;
- ``hide-table REGION TABLE``: the table answers ResourceNotFoundException to the other regions
  (a target table that disappeared: writes are handed off);
- ``stop REGION`` / ``resume REGION``: the region's stream mappings are disabled / enabled again
  (records wait in the stream, as when an event source mapping is disabled);
- ``break REGION``: REGION's stream functions fail every invocation (a bad deploy): the mapping retries
  and bisects, then discards the batch to its on-failure destination (a discarded batch);
- ``oversize REGION TABLE PK [SK]``: write an item that fits the source table but not a target once
  the replication metadata is added (a dead letter, ``ItemTooLarge``, per target);
- ``deny-role ROLE_ARN``: every region's STS answers ``sts:AssumeRole`` for the role with AccessDenied
  (a trust policy that no longer allows the caller: the pair's writes are handed off);
- ``heal [REGION]``: undo the network faults (isolation, throttling, hidden tables), broken functions
  and denied roles (any heal: a role is denied by every region).

Three requests are the Step Functions API of the runbook's deployed backfill job (ddbrep/local/states.py):
``start-execution``, ``describe-execution`` and ``redrive-execution`` (``local states``, answered with
the API's JSON).

One request is not a fault: ``deploy`` applies a newer synthesized assembly (its directory) to the
running cloud, as ``cdk deploy --all`` updates the stacks (``LocalCloud.deploy``; ``add-region
--deploy --local-state`` sends it).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replicator.core.wire import item_size_bytes

if TYPE_CHECKING:
    from ddbrep.local.cloud import LocalCloud

CONTROL_DIR = "control"
_REQUEST, _REPLY = ".request.json", ".reply.json"
WATCH_INTERVAL_SECONDS = 0.2
# The local engine (moto) refuses an item over 405,000 bytes, below DynamoDB's 409,600 (a deviation:
# docs/LOCAL.md); an "oversize" item is just under the engine's limit, so a target copy with its
# rep_seq added is refused by the target, as AWS refuses one over 409,600.
ENGINE_ITEM_LIMIT_BYTES = 405_000
# Bytes left under the limit by an "oversize" item: less than the metadata a target copy adds.
OVERSIZE_MARGIN_BYTES = 8


class ControlError(Exception):
    """A request the running cloud cannot apply (the message says why)."""


def request(log_dir: Path, command: Mapping[str, Any], timeout: float = 10.0) -> str:
    """Ask the ``local up`` running with ``log_dir`` to apply ``command``; its reply."""
    directory = log_dir / CONTROL_DIR
    if not directory.is_dir():
        raise ControlError(f"no running `local up` with --log-dir {log_dir} (no {directory}/)")
    name = uuid.uuid4().hex
    staging = directory / f"{name}.tmp"
    staging.write_text(json.dumps(dict(command)))
    staging.rename(directory / f"{name}{_REQUEST}")  # atomic: the watcher never reads half a request
    reply_path = directory / f"{name}{_REPLY}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reply_path.exists():
            reply = json.loads(reply_path.read_text())
            reply_path.unlink()
            if not reply["ok"]:
                raise ControlError(str(reply["message"]))
            return str(reply["message"])
        time.sleep(0.05)
    with contextlib.suppress(FileNotFoundError):
        (directory / f"{name}{_REQUEST}").unlink()
    raise ControlError(
        f"the `local up` with --log-dir {log_dir} did not answer in {timeout:g} s: is it running?"
    )


def oversize_item(keys: Mapping[str, Any], now_us: int, region: str) -> dict[str, Any]:
    """A stamped item a few bytes under DynamoDB's limit: the source takes it, a target copy (with
    ``rep_seq`` added) is over it."""
    item: dict[str, Any] = {
        **keys,
        "rep_ts": {"N": str(now_us)},
        "rep_region": {"S": region},
        "payload": {"S": ""},
    }
    item["payload"] = {"S": "x" * (ENGINE_ITEM_LIMIT_BYTES - OVERSIZE_MARGIN_BYTES - item_size_bytes(item))}
    return item


def apply(cloud: LocalCloud, command: Mapping[str, Any]) -> str:
    """Apply one fault to the running cloud; what changed, in a sentence."""
    action = str(command.get("fault"))
    handler = _HANDLERS.get(action)
    if handler is None:
        raise ControlError(f"unknown fault {action!r}: one of {', '.join(sorted(_HANDLERS))}")
    region = command.get("region")
    if region is not None and region not in cloud.region_names:
        raise ControlError(f"no region {region!r} here: {', '.join(cloud.region_names)}")
    return handler(cloud, command)


def _isolate(cloud: LocalCloud, c: Mapping[str, Any]) -> str:
    cloud.faults.isolate(c["region"], float(c["seconds"]))
    return f"{c['region']} isolated from every other region for {float(c['seconds']):g} s"


def _throttle(cloud: LocalCloud, c: Mapping[str, Any]) -> str:
    cloud.faults.throttle(c["region"], float(c["rate"]), float(c["seconds"]))
    return (
        f"{float(c['rate']):.0%} of the other regions' DynamoDB requests to {c['region']} throttled "
        f"for {float(c['seconds']):g} s"
    )


def _hide_table(cloud: LocalCloud, c: Mapping[str, Any]) -> str:
    cloud.faults.hide_table(c["region"], c["table"], float(c["seconds"]))
    return (
        f"table {c['table']} of {c['region']} answers ResourceNotFoundException to the other regions "
        f"for {float(c['seconds']):g} s"
    )


def _deny_role(cloud: LocalCloud, c: Mapping[str, Any]) -> str:
    role, seconds = str(c["role_arn"]), float(c["seconds"])
    try:
        cloud.faults.deny_role(role, seconds)
    except ValueError as err:
        raise ControlError(str(err)) from None
    return f"sts:AssumeRole for {role} answers AccessDenied in every region for {seconds:g} s"


def _stop(cloud: LocalCloud, c: Mapping[str, Any]) -> str:
    names = cloud.pause_stream_mappings(c["region"], paused=True)
    return f"stream mappings disabled in {c['region']}: {', '.join(names)} (records wait in the stream)"


def _resume(cloud: LocalCloud, c: Mapping[str, Any]) -> str:
    names = cloud.pause_stream_mappings(c["region"], paused=False)
    return f"stream mappings enabled in {c['region']}: {', '.join(names)}"


def _break(cloud: LocalCloud, c: Mapping[str, Any]) -> str:
    until = time.time() + float(c["seconds"])
    names = []
    for poller in cloud.stream_pollers:
        if poller.source.region == c["region"]:
            poller.function.failing_until = until
            names.append(poller.function.config.name)
    return (
        f"{', '.join(names)} in {c['region']} fail every invocation for {float(c['seconds']):g} s: its "
        "batches are retried, then discarded to the on-failure destination"
    )


def _heal(cloud: LocalCloud, c: Mapping[str, Any]) -> str:
    cloud.faults.heal(c.get("region"))
    for poller in cloud.stream_pollers:
        if c.get("region") in (None, poller.source.region):
            poller.function.failing_until = 0.0
    return (
        f"network faults and broken functions healed ({c.get('region') or 'every region'}), "
        "denied roles allowed again"
    )


def _oversize(cloud: LocalCloud, c: Mapping[str, Any]) -> str:
    keys = {name: {"S": value} for name, value in dict(c["keys"]).items()}
    item = oversize_item(keys, int(time.time() * 1_000_000), c["region"])
    cloud.client(c["region"]).put_item(TableName=c["table"], Item=item)
    return (
        f"wrote {item_size_bytes(item)} bytes to {c['table']} in {c['region']} at {json.dumps(c['keys'])}: "
        "too large for every target once the replication metadata is added (a dead letter per target)"
    )


def _deploy(cloud: LocalCloud, c: Mapping[str, Any]) -> str:
    from ddbrep.local.templates import load_assembly

    changes = cloud.deploy(load_assembly(c["assembly"]))
    return f"deployed {c['assembly']}: " + ("; ".join(changes) or "no change")


def _states(
    call: Callable[[LocalCloud, Mapping[str, Any]], Any],
) -> Callable[[LocalCloud, Mapping[str, Any]], str]:
    """A Step Functions call: its answer as JSON text; its refusal (ApiError) as the API names it."""

    def handle(cloud: LocalCloud, c: Mapping[str, Any]) -> str:
        from ddbrep.local.states import ApiError

        try:
            return json.dumps(call(cloud, c), indent=4)
        except ApiError as err:
            raise ControlError(f"An error occurred ({err.code}): {err.message}") from None

    return handle


_HANDLERS: dict[str, Callable[[LocalCloud, Mapping[str, Any]], str]] = {
    "isolate": _isolate,
    "throttle": _throttle,
    "hide-table": _hide_table,
    "deny-role": _deny_role,
    "stop": _stop,
    "resume": _resume,
    "heal": _heal,
    "oversize": _oversize,
    "break": _break,
    "deploy": _deploy,
    "start-execution": _states(
        lambda cloud, c: cloud.states.start_execution(
            c["state_machine_arn"], c.get("input", "{}"), c.get("name")
        )
    ),
    "describe-execution": _states(lambda cloud, c: cloud.states.describe_execution(c["execution_arn"])),
    "redrive-execution": _states(lambda cloud, c: cloud.states.redrive_execution(c["execution_arn"])),
}


class ControlWatcher:
    """Applies the requests that appear under ``<log dir>/control/`` to a running cloud."""

    def __init__(self, cloud: LocalCloud, log_dir: Path) -> None:
        self.cloud, self.directory = cloud, log_dir / CONTROL_DIR
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ControlWatcher:
        self.directory.mkdir(parents=True, exist_ok=True)
        for stale in self.directory.glob(f"*{_REQUEST}"):  # asked of an earlier run
            stale.unlink()
        self._thread = threading.Thread(target=self._run, name="local-control", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL_SECONDS):
            for path in sorted(self.directory.glob(f"*{_REQUEST}")):
                self.handle(path)

    def handle(self, path: Path) -> None:
        try:
            message, ok = apply(self.cloud, json.loads(path.read_text())), True
        except (ControlError, KeyError, TypeError, ValueError) as err:
            message, ok = (
                f"{type(err).__name__}: {err}" if not isinstance(err, ControlError) else str(err),
                False,
            )
        except Exception as err:  # the runtime keeps running; the asker learns why
            message, ok = f"{type(err).__name__}: {err}", False
        reply = path.with_name(path.name[: -len(_REQUEST)] + _REPLY)
        staging = reply.with_suffix(".tmp")
        staging.write_text(json.dumps({"ok": ok, "message": message}))
        staging.rename(reply)
        path.unlink()
