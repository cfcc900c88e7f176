"""Simulated regions: one moto server per region on 127.0.0.1, on a free port, stopped by PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

from ddbrep.local.engine_server import AGE_PATH

LOOPBACK = "127.0.0.1"
ACCOUNT_ID = "123456789012"  # moto's default account: ARNs built here match the ones moto returns
DUMMY_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}
HEALTH_PATH = "/moto-api/"


class RegionStartError(RuntimeError):
    """A local region's server did not become healthy."""


_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding the ddbrep package


def free_port() -> int:
    """A TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def moto_server_command(port: int) -> list[str]:
    """The moto server of this interpreter's environment, bound to loopback only, with its stream
    sequence race fixed (ddbrep/local/engine_server.py)."""
    return [sys.executable, "-m", "ddbrep.local.engine_server", "-H", LOOPBACK, "-p", str(port)]


def is_healthy(url: str, timeout: float = 0.5) -> bool:
    try:
        with urllib.request.urlopen(url + HEALTH_PATH, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


# One session makes every client of the runtime: a botocore session keeps the service models it has
# loaded, and a session per client parsed them again each time (about 0.3 s of CPU per client: most of
# a 3-region start). Clients made from one session share nothing else (each has its own connection
# pool); making them is not thread-safe, hence the lock.
_SESSION_LOCK = threading.Lock()
_SESSION: boto3.session.Session | None = None


def _shared_session() -> boto3.session.Session:
    global _SESSION
    if _SESSION is None:
        _SESSION = boto3.session.Session()
    return _SESSION


def client_config(**overrides: Any) -> Config:
    """Short timeouts (loopback) and a pool large enough for the runtime's threads."""
    settings: dict[str, Any] = {
        "retries": {"mode": "standard", "max_attempts": 3},
        "connect_timeout": 2,
        "read_timeout": 30,
        "max_pool_connections": 32,
    }
    settings.update(overrides)
    return Config(**settings)


@dataclass
class Region:
    """One simulated region: a moto server process (the engine) and its public endpoint.

    ``engine_url`` is the moto server itself (the runtime reads streams there). ``endpoint_url`` is
    what clients use: the region's gateway, which rejects requests AWS would reject but moto accepts
    (see faults.Gateway); it equals engine_url until a gateway is attached.
    """

    name: str
    port: int
    process: subprocess.Popen[bytes] | None = None
    endpoint_url: str = ""
    _clients: dict[tuple[str, bool], Any] = field(default_factory=dict, repr=False)

    @property
    def engine_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def queue_age_of_oldest_message(self, account_id: str, queue_name: str) -> float | None:
        """The queue's ApproximateAgeOfOldestMessage (seconds) as SQS's CloudWatch metric reports it, or
        None when it reports nothing (engine_server.py: SQS's API has no such attribute)."""
        query = urllib.parse.urlencode({"account": account_id, "region": self.name, "queue": queue_name})
        with urllib.request.urlopen(f"{self.engine_url}{AGE_PATH}?{query}", timeout=5) as answer:
            age = json.loads(answer.read())["age_seconds"]
        return None if age is None else float(age)

    def client(self, service: str, *, engine: bool = True) -> Any:
        """A shared boto3 client of this region (the engine by default; the gateway with engine=False)."""
        key = (service, engine)
        if key not in self._clients:
            self._clients[key] = self.new_client(service, engine=engine)
        return self._clients[key]

    def new_client(self, service: str, *, engine: bool = True) -> Any:
        """A boto3 client of its own (one per thread that polls, so pools are not shared)."""
        url = self.engine_url if engine else (self.endpoint_url or self.engine_url)
        with _SESSION_LOCK:
            return _shared_session().client(
                service,
                region_name=self.name,
                endpoint_url=url,
                aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
                aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                config=client_config(),
            )


def start_region(
    name: str, log_dir: Path | None = None, timeout: float = 20.0, account_id: str = ACCOUNT_ID
) -> Region:
    """Start a moto server for ``name`` on a free loopback port and wait until it answers.

    ``account_id`` becomes the server's account (MOTO_ACCOUNT_ID), so the ARNs it returns carry the
    account of the stack's environment, like the templates do.
    """
    last_error = ""
    for _attempt in range(3):  # a free port can be taken between choosing and binding it
        port = free_port()
        log = open(log_dir / f"moto-{name}.log", "ab") if log_dir else subprocess.DEVNULL  # noqa: SIM115
        env = {**os.environ, **DUMMY_CREDENTIALS, "MOTO_ACCOUNT_ID": account_id}
        # the server module is ddbrep's own: importable however this process found ddbrep
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PACKAGE_ROOT), env.get("PYTHONPATH")) if p)
        process = subprocess.Popen(
            moto_server_command(port),
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # Ctrl-C in a terminal reaches us, not the servers: we stop them
        )
        if log is not subprocess.DEVNULL:
            log.close()  # type: ignore[union-attr]
        region = Region(name=name, port=port, process=process)
        region.endpoint_url = region.engine_url
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                last_error = f"moto server for {name} exited with code {process.returncode}"
                break
            if is_healthy(region.engine_url):
                return region
            time.sleep(0.1)
        else:
            last_error = f"moto server for {name} on port {port} not healthy after {timeout:.0f}s"
        stop_region(region)
    raise RegionStartError(last_error)


def stop_region(region: Region, timeout: float = 5.0) -> None:
    """Stop the region's server by its PID: SIGTERM, then SIGKILL if it does not exit in time."""
    stop_regions([region], timeout)


def stop_regions(regions: Sequence[Region], timeout: float = 5.0) -> None:
    """Stop the servers by their PIDs, all at once (each takes most of a second to exit): SIGTERM to
    every one, then SIGKILL to those that have not exited in time."""
    running = [r.process for r in regions if r.process is not None and r.process.poll() is None]
    for process in running:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for process in running:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=timeout)
