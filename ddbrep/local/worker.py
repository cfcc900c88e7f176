"""A function's sandbox: its own process, its own environment, the unmodified handler.

Like Lambda, the environment is set before the handler module is imported (the handler parses its
settings once, at import), the process is reused across invocations, and it is killed when an
invocation exceeds the function's timeout. Everything the function prints (EMF metrics, logs) is
captured line by line and returned with each invocation's result.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from ddbrep.local.limits import MAX_SYNC_PAYLOAD_BYTES

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT_SECONDS = 60
# Kept from the parent environment: what an interpreter needs to start, nothing the function could read.
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "SYSTEMROOT")


@dataclass(frozen=True)
class FunctionConfig:
    """What a sandbox needs: the handler, the environment and the limits from the template."""

    name: str
    region: str
    handler: str
    environment: Mapping[str, str]
    code_paths: Sequence[str]
    timeout_seconds: float = 3.0
    memory_mb: int = 128
    account: str = "123456789012"
    # The function's LoggingConfig (Lambda's advanced logging controls): "Text" or "JSON", and the level
    # of the platform's own lines Lambda sends to CloudWatch Logs ("DEBUG", "INFO" or "WARN").
    log_format: str = "Text"
    system_log_level: str = "INFO"

    @property
    def arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}"


@dataclass(frozen=True)
class Invocation:
    """The outcome of one invocation, as Lambda's poller sees it."""

    request_id: str
    ok: bool  # False: the function raised, timed out or crashed (a "function error")
    payload: Any  # the handler's return value, or Lambda's error document
    output: tuple[str, ...] = ()
    duration_ms: float = 0.0
    cold_start: bool = False


class LambdaContext:
    """The context object handlers receive."""

    def __init__(self, config: Mapping[str, Any], request_id: str, deadline: float) -> None:
        self.function_name = config["name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = config["arn"]
        self.memory_limit_in_mb = int(config["memory_mb"])
        self.aws_request_id = request_id
        self.log_group_name = f"/aws/lambda/{config['name']}"
        self.log_stream_name = f"local/{os.getpid()}"
        self.identity = None
        self.client_context = None
        self._deadline = deadline

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.time()) * 1000))

    @classmethod
    def for_function(
        cls, name: str, *, region: str = "us-east-1", timeout_seconds: float = 900.0, memory_mb: int = 512
    ) -> LambdaContext:
        """A context for calling a handler directly (unit tests, benchmarks): the one context stub."""
        config = {
            "name": name,
            "arn": f"arn:aws:lambda:{region}:123456789012:function:{name}",
            "memory_mb": memory_mb,
        }
        return cls(config, request_id=f"local-{uuid.uuid4()}", deadline=time.time() + timeout_seconds)


def lambda_log_lines(
    request_id: str,
    lines: Sequence[str],
    ok: bool,
    payload: Any,
    started: float,
    log_format: str = "Text",
    system_log_level: str = "INFO",
) -> list[str]:
    """What CloudWatch Logs shows for one invocation: the platform's start line, the function's own
    lines (as printed: Lambda does not wrap what Python prints, in either log format), the error Lambda
    logs for a failed invocation (type, message, stack trace), and the platform's end and report lines.

    The platform lines are INFO-level system logs: at the system log level WARN (JSON log format only)
    Lambda does not send them (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs-log-level.html),
    and neither does this. In the JSON format they are JSON objects (``platform.start``,
    ``platform.report``) and the error is one JSON object at level ERROR."""
    as_json = log_format.upper() == "JSON"
    platform = not (as_json and system_log_level.upper() == "WARN")
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    out: list[str] = []
    if platform:
        if as_json:
            start = {"requestId": request_id, "version": "$LATEST"}
            out.append(json.dumps({"time": now, "type": "platform.start", "record": start}))
        else:
            out.append(f"START RequestId: {request_id} Version: $LATEST")
    out.extend(lines)
    if not ok and isinstance(payload, Mapping):
        error = {
            "errorType": payload.get("errorType", ""),
            "errorMessage": payload.get("errorMessage", ""),
            "requestId": request_id,
            "stackTrace": payload.get("stackTrace", []),
        }
        out.append(
            json.dumps({"timestamp": now, "level": "ERROR", **error})
            if as_json
            else "[ERROR] " + json.dumps(error)
        )
    if platform:
        duration = (time.monotonic() - started) * 1000
        if as_json:
            report = {
                "requestId": request_id,
                "status": "success" if ok else "error",
                "metrics": {"durationMs": round(duration, 2)},
            }
            out.append(json.dumps({"time": now, "type": "platform.report", "record": report}))
        else:
            out.append(f"END RequestId: {request_id}")
            out.append(f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms")
    return out


class _LineCapture(io.TextIOBase):
    """Replaces sys.stdout/sys.stderr in the sandbox: collects complete lines, thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._partial = ""
        self._lines: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            pending = self._partial + text
            *complete, self._partial = pending.split("\n")
            self._lines.extend(complete)
        return len(text)

    def drain(self) -> list[str]:
        with self._lock:
            lines, self._lines = self._lines, []
            if self._partial:
                lines.append(self._partial)
                self._partial = ""
            return lines


def sandbox_environment(config: FunctionConfig) -> dict[str, str]:
    """The process environment of the function: the template's variables plus Lambda's own."""
    env = {key: os.environ[key] for key in _PASSTHROUGH if key in os.environ}
    env.update(
        {
            "AWS_REGION": config.region,
            "AWS_DEFAULT_REGION": config.region,
            "AWS_LAMBDA_FUNCTION_NAME": config.name,
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.name}",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python_local",
            "LAMBDA_TASK_ROOT": config.code_paths[0] if config.code_paths else "",
            "_HANDLER": config.handler,
            "AWS_EC2_METADATA_DISABLED": "true",
        }
    )
    env.update(config.environment)
    return env


def _sandbox_main() -> None:
    """Entry point of the worker process: ``python -m ddbrep.local.worker`` with the function's environment.

    The protocol runs over the process's stdin and stdout (pickled frames); fd 1 is then pointed at
    stderr and sys.stdout/sys.stderr at a line capture, so nothing the function prints can corrupt it.
    """
    requests = Connection(os.dup(0), writable=False)
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)
    capture = _LineCapture()
    sys.stdout = capture
    sys.stderr = capture
    config = requests.recv()
    sys.path[:0] = list(config["code_paths"])
    module_name, _, attribute = config["handler"].rpartition(".")
    try:
        handler: Callable[[Any, Any], Any] = getattr(importlib.import_module(module_name), attribute)
    except BaseException:
        failure = {"errorType": "Runtime.ImportModuleError", "errorMessage": traceback.format_exc()}
        replies.send(("init_error", failure, capture.drain()))
        return
    replies.send(("ready", None, capture.drain()))
    while True:
        try:
            message = requests.recv()
        except EOFError:
            return
        if message is None:
            return
        event_text, request_id, deadline = message
        event = json.loads(event_text)  # the handler gets what Lambda's runtime gives it: parsed JSON
        context = LambdaContext(config, request_id, deadline)
        try:
            result = handler(event, context)
        except Exception as exc:
            error: dict[str, Any] = {
                "errorType": type(exc).__name__,
                "errorMessage": str(exc),
                "stackTrace": traceback.format_exc().splitlines(),
            }
            reply = ("error", error)
        else:
            reply = _as_lambda_response(result)
        replies.send((*reply, capture.drain()))


def _as_lambda_response(result: Any) -> tuple[str, Any]:
    """The handler's return value as the caller gets it: through JSON, or Lambda's marshalling error."""
    try:
        return "ok", json.loads(json.dumps(result, allow_nan=False))
    except (TypeError, ValueError) as exc:
        return "error", {
            "errorType": "Runtime.MarshalError",
            "errorMessage": f"Unable to marshal response: {exc}",
        }


class FunctionWorker:
    """Parent side of one function's sandbox: start lazily (cold start), invoke, kill on timeout."""

    def __init__(
        self, config: FunctionConfig, on_output: Callable[[FunctionConfig, Sequence[str]], None] | None = None
    ) -> None:
        self.config = config
        self.on_output = on_output
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._conn: Connection | None = None
        self._requests: Connection | None = None
        self.invocations = 0
        self.errors = 0
        # `local fault break`: until then every invocation fails as a crashing runtime does (a bad deploy)
        self.failing_until = 0.0

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        with self._lock:
            self._ensure_started()

    def _ensure_started(self) -> bool:
        """Start the sandbox if it is not running; True when this was a cold start."""
        if self._process is not None and self._process.poll() is None:
            return False
        self._kill()
        env = sandbox_environment(self.config)
        env["PYTHONPATH"] = str(_REPO_ROOT)
        process = subprocess.Popen(
            [sys.executable, "-m", "ddbrep.local.worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            cwd=str(_REPO_ROOT),
            start_new_session=True,  # Ctrl-C reaches the runtime, which stops its sandboxes by PID
        )
        assert process.stdin is not None and process.stdout is not None
        self._process = process
        self._requests = Connection(os.dup(process.stdin.fileno()), readable=False)
        self._conn = Connection(os.dup(process.stdout.fileno()), writable=False)
        process.stdin.close()
        process.stdout.close()
        self._requests.send(
            {
                "name": self.config.name,
                "arn": self.config.arn,
                "memory_mb": self.config.memory_mb,
                "handler": self.config.handler,
                "code_paths": list(self.config.code_paths),
            }
        )
        if not self._conn.poll(START_TIMEOUT_SECONDS):
            self._kill()
            raise RuntimeError(f"function {self.config.name} did not start within {START_TIMEOUT_SECONDS} s")
        try:
            status, error, lines = self._conn.recv()
        except EOFError:
            self._kill()
            raise RuntimeError(f"function {self.config.name} exited while starting") from None
        self._emit(lines)
        if status != "ready":
            self._kill()
            raise RuntimeError(f"function {self.config.name} failed to initialise: {error['errorMessage']}")
        return True

    def invoke(self, event: Any) -> Invocation:
        """Run the handler once; a function error, timeout or crash is reported, never raised.

        The event crosses into the sandbox as JSON text, as Lambda's does: an event that is not JSON
        (bytes, Decimal, datetime...) raises TypeError here, in the stand-in that built it; an event
        over the synchronous payload limit is refused without running the handler, as Lambda's
        Invoke refuses it (RequestEntityTooLargeException), and counts as a failed invocation.
        """
        request_id = str(uuid.uuid4())
        event_text = json.dumps(event, allow_nan=False)
        size = len(event_text.encode("utf-8"))
        with self._lock:
            self.invocations += 1
            if size > MAX_SYNC_PAYLOAD_BYTES:
                self.errors += 1
                message = (
                    f"Request must be smaller than {MAX_SYNC_PAYLOAD_BYTES} bytes for the InvokeFunction "
                    f"operation (got {size})"
                )
                return Invocation(
                    request_id,
                    False,
                    {"errorType": "RequestEntityTooLargeException", "errorMessage": message},
                )
            started = time.monotonic()
            if time.time() < self.failing_until:
                self.errors += 1
                error = {
                    "errorType": "Runtime.ExitError",
                    "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: "
                    "exit status 1 (staged by `local fault break`)",
                }
                self._emit(self._log_lines(request_id, [], False, error, started))
                return Invocation(request_id, False, error)
            try:
                cold = self._ensure_started()
            except RuntimeError as err:
                self.errors += 1
                return Invocation(
                    request_id, False, {"errorType": "Runtime.InitError", "errorMessage": str(err)}
                )
            assert self._conn is not None
            deadline = time.time() + self.config.timeout_seconds
            try:
                assert self._requests is not None
                self._requests.send((event_text, request_id, deadline))
                if not self._conn.poll(self.config.timeout_seconds + 0.5):
                    self._kill()
                    self.errors += 1
                    message = f"Task timed out after {self.config.timeout_seconds:.2f} seconds"
                    error = {"errorType": "Sandbox.Timedout", "errorMessage": message}
                    self._emit(self._log_lines(request_id, [], False, error, started))
                    return Invocation(request_id, False, error)
                status, payload, lines = self._conn.recv()
            except (EOFError, OSError, BrokenPipeError) as err:
                self._kill()
                self.errors += 1
                error = {"errorType": "Runtime.ExitError", "errorMessage": repr(err)}
                self._emit(self._log_lines(request_id, [], False, error, started))
                return Invocation(request_id, False, error)
            ok = status == "ok"
            self._emit(self._log_lines(request_id, lines, ok, payload, started))
            if not ok:
                self.errors += 1
            return Invocation(
                request_id, ok, payload, tuple(lines), (time.monotonic() - started) * 1000, cold
            )

    def _log_lines(
        self, request_id: str, lines: Sequence[str], ok: bool, payload: Any, started: float
    ) -> list[str]:
        config = self.config
        return lambda_log_lines(
            request_id, lines, ok, payload, started, config.log_format, config.system_log_level
        )

    def _emit(self, lines: Sequence[str]) -> None:
        if lines and self.on_output is not None:
            self.on_output(self.config, lines)

    def _kill(self) -> None:
        process, connections = self._process, (self._conn, self._requests)
        self._process, self._conn, self._requests = None, None, None
        for connection in connections:
            if connection is not None:
                with contextlib.suppress(OSError):
                    connection.close()
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)  # by PID: this sandbox's process only
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)

    def terminate(self) -> None:
        """Kill the sandbox's process now, even in the middle of an invocation (the runtime stops): that
        invocation ends as a crash (``Runtime.ExitError``) and cleans up under its lock."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)  # by PID: this sandbox's process only

    def reconfigure(self, config: FunctionConfig) -> None:
        """A function configuration update (a deploy), as Lambda applies one: an invocation in flight
        finishes with the old configuration, the next one starts a new sandbox with ``config``."""
        with self._lock:
            self._shutdown()
            self.config = config

    def stop(self) -> None:
        with self._lock:
            self._shutdown()

    def _shutdown(self) -> None:
        process = self._process
        if self._requests is not None and process is not None and process.poll() is None:
            with contextlib.suppress(OSError):
                self._requests.send(None)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=2)
        self._kill()


class FunctionPool:
    """Concurrent invocations of one function, as Lambda serves them: each invocation in flight has a
    sandbox of its own (an execution environment), reused once idle, started when none is (a cold start).

    ``primary`` is the function's own worker: faults (``failing_until``) and configuration updates apply
    to it, and the other sandboxes follow it. A stand-in that invokes one batch at a time (the stream and
    SQS mappings) uses the worker directly; a state machine's Map invokes many at once, through a pool.
    """

    def __init__(
        self,
        primary: FunctionWorker,
        on_output: Callable[[FunctionConfig, Sequence[str]], None] | None = None,
    ) -> None:
        self.primary, self.on_output = primary, on_output
        self._idle = [primary]
        self._extra: list[FunctionWorker] = []
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return 1 + len(self._extra)

    def invoke(self, event: Any) -> Invocation:
        with self._lock:
            if self._idle:
                worker = self._idle.pop()
            else:
                worker = FunctionWorker(self.primary.config, on_output=self.on_output)
                self._extra.append(worker)
        try:
            if worker is not self.primary:
                if worker.config != self.primary.config:
                    worker.reconfigure(self.primary.config)
                worker.failing_until = self.primary.failing_until
            return worker.invoke(event)
        finally:
            with self._lock:
                self._idle.append(worker)

    def terminate(self) -> None:
        """Kill every sandbox of the pool at once, the primary too (the runtime stops: a long invocation
        in flight, a backfill page loop of up to 14 minutes, must not hold it up)."""
        with self._lock:
            workers = [self.primary, *self._extra]
        for worker in workers:
            worker.terminate()

    def stop(self) -> None:
        """Stop the sandboxes this pool started (the primary belongs to the runtime)."""
        with self._lock:
            extra, self._extra = self._extra, []
            self._idle = [self.primary]
        for worker in extra:
            worker.stop()


if __name__ == "__main__":
    _sandbox_main()
