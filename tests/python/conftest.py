"""Fixtures: a real `mirror serve` process per test, and fake upstreams.

The gateway binary comes from `MIRROR_BIN`, else `$CARGO_TARGET_DIR/debug/mirror`, else
`<workspace>/target/debug/mirror` (`cargo xtask ci` builds it and sets `MIRROR_BIN`).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from fakes import FakeUpstream, Handler  # noqa: E402

WORKSPACE = Path(__file__).resolve().parents[2]
START_DEADLINE = 60.0
STOP_DEADLINE = 60.0


def mirror_bin() -> Path:
    if os.environ.get("MIRROR_BIN"):
        return Path(os.environ["MIRROR_BIN"])
    target = Path(os.environ.get("CARGO_TARGET_DIR") or WORKSPACE / "target")
    if not target.is_absolute():
        target = WORKSPACE / target
    return target / "debug" / "mirror"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gateway:
    """One `mirror serve` process on a free loopback port, with its stderr in a file."""

    def __init__(self, workdir: Path, config: str | None, env: dict[str, str] | None = None):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path: Path | None = None
        if config is not None:
            self.config_path = workdir / "config.yaml"
            self.config_path.write_text(config)
        self.stderr_path = workdir / "gateway.stderr.log"
        self.env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "info"), **(env or {})}
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.returncode: int | None = None
        self._start()

    def _start(self) -> None:
        binary = mirror_bin()
        if not binary.exists():
            pytest.fail(f"gateway binary {binary} not found: run `cargo build -p mirror-cli --bin mirror` or set MIRROR_BIN")
        for _attempt in range(3):
            self.port = free_port()
            args = [str(binary), "serve", "--host", "127.0.0.1", "--port", str(self.port)]
            if self.config_path is not None:
                args += ["--config", str(self.config_path)]
            stderr = open(self.stderr_path, "ab")
            # The working directory is the test's own, so the default `mirror-calls.jsonl` lands there.
            self.proc = subprocess.Popen(args, cwd=self.workdir, env=self.env, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr)
            stderr.close()
            if self._wait_ready():
                return
            if self.proc.poll() is not None and "cannot serve" in self.stderr():
                continue  # the port was taken between picking and binding: try another
            break
        self.kill()
        pytest.fail(f"gateway did not start; stderr:\n{self.stderr()}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_DEADLINE
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.url}/health/liveliness", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        return False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(f"{self.url}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode()

    def metrics(self, headers: dict[str, str] | None = None) -> str:
        status, text = self.get("/metrics", headers)
        assert status == 200, text
        return text

    def terminate(self) -> None:
        """Sends SIGTERM (without waiting)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout: float = STOP_DEADLINE) -> int:
        assert self.proc is not None
        try:
            self.returncode = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"gateway did not exit within {timeout}s of SIGTERM; stderr:\n{self.stderr()}")
        return self.returncode

    def stop(self) -> None:
        """SIGTERM, then checks the process exits 0."""
        if self.proc is None or self.returncode is not None:
            return
        if self.proc.poll() is not None:
            self.returncode = self.proc.returncode
        else:
            self.terminate()
            self.wait()
        assert self.returncode == 0, f"gateway exited {self.returncode}; stderr:\n{self.stderr()}"

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            records.append(json.loads(line))
    return records


def wait_until(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def start_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """`start_gateway(config_yaml=None, env=None)` starts a gateway; each is stopped with SIGTERM at the
    end of the test, which fails unless it exits 0."""
    started: list[Gateway] = []

    def start(config: str | None = None, env: dict[str, str] | None = None) -> Gateway:
        gateway = Gateway(tmp_path / f"gateway{len(started)}", config, env)
        started.append(gateway)
        return gateway

    yield start
    failures = []
    for gateway in started:
        try:
            gateway.stop()
        except AssertionError as err:
            failures.append(str(err))
        finally:
            gateway.kill()
    if failures:
        pytest.fail("\n".join(failures))


@pytest.fixture
def fake_upstream() -> Iterator[Callable[[Handler], FakeUpstream]]:
    """`fake_upstream(handler)` starts a fake server; all are closed at the end of the test."""
    servers: list[FakeUpstream] = []

    def start(handler: Handler) -> FakeUpstream:
        server = FakeUpstream(handler)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()
