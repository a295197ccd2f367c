"""A real `aftersale worker` subprocess, for the integration and fault tests and the benchmarks: start
(waiting for /health or /ready), SIGKILL, stop, restart on the same data dir, RSS and CPU."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .. import webauth
from ..config import Settings

REPO = Path(__file__).resolve().parents[2]


def http_get(url: str, timeout: float = 1.0, token: str | None = None) -> tuple[int, bytes]:
    """GET with the views' token (streams/webauth.py), if given: (status, body)."""
    request = urllib.request.Request(url, headers=webauth.headers(token))
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


_APP_TOKENS: dict[str, str] = {}


class WorkerRun:
    """A real `aftersale worker` subprocess (or another Faust worker command). Keeps its web port and
    instance id across restarts (static membership: Faust checks the URL in the member metadata)."""

    def __init__(
        self,
        settings: Settings,
        data_dir: Path,
        log_path: Path,
        clock: str = "event",
        instance_id: str = "w0",
        loglevel: str = "warning",
        argv: list[str] | None = None,
        env: dict | None = None,
        session_timeout: float = 10.0,
    ):
        self.settings, self.data_dir, self.log_path = settings, Path(data_dir), Path(log_path)
        self.clock, self.instance_id, self.loglevel = clock, instance_id, loglevel
        self.argv, self.extra_env, self.session_timeout = argv, env or {}, session_timeout
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.started_at: float | None = None  # time.monotonic() of the last start
        # The views' token: the settings', else one per app id, so workers of one app can route
        # requests to each other (streams/webauth.py).
        self.token = settings.web_token or _APP_TOKENS.setdefault(settings.app_id, secrets.token_urlsafe(16))

    def command(self) -> list[str]:
        if self.argv is not None:
            return [*self.argv, "--web-port", str(self.port)]
        return [
            sys.executable,
            "-m",
            "streams.cli",
            "worker",
            "--clock",
            self.clock,
            "--data-dir",
            str(self.data_dir),
            "--web-port",
            str(self.port),
            "--loglevel",
            self.loglevel,
        ]

    def start(self, wait: str | None = "health", timeout: float = 120.0) -> "WorkerRun":
        from deploy.broker import die_with_parent_preexec, free_port

        self.port = self.port or free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
            "AFTERSALE_APP_ID": self.settings.app_id,
            "AFTERSALE_PARTITIONS": str(self.settings.partitions),
            "AFTERSALE_INSTANCE_ID": self.instance_id,
            "AFTERSALE_SESSION_TIMEOUT": str(self.session_timeout),
            "AFTERSALE_DATA_DIR": str(self.data_dir),
            "AFTERSALE_WEB_TOKEN": self.token,
            **self.extra_env,
        }
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.started_at = time.monotonic()
            self.proc = subprocess.Popen(
                self.command(),
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                # SIGTERM when this process dies (started from the main thread), so a crashed test
                # run leaves no worker behind.
                preexec_fn=die_with_parent_preexec(os.getpid()),
            )
        if wait == "health":
            self.wait_for(lambda: self.health(), timeout, "answer /health")
        elif wait == "ready":
            self.wait_for(lambda: self.ready(), timeout, "be ready")
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def health(self) -> bool:
        try:
            return http_get(self.url("/health"))[0] == 200
        except OSError:
            return False

    def ready(self) -> bool:
        """/ready: running, assignment received, tables recovered."""
        try:
            return http_get(self.url("/ready"))[0] == 200
        except OSError:
            return False

    def wait_for(self, check, timeout: float, what: str, poll: float = 0.1) -> float:
        """Seconds since start until `check()` held."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            if check():
                return time.monotonic() - self.started_at
            time.sleep(poll)
        raise TimeoutError(f"worker did not {what} within {timeout:.0f}s:\n{self.log_tail()}")

    def rss_bytes(self) -> int:
        """VmRSS of the worker process (/proc/<pid>/status)."""
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker process so far (/proc/<pid>/stat)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def metrics(self) -> str:
        return http_get(self.url("/metrics"), timeout=5, token=self.token)[1].decode()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit, no flush."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self, timeout: float = 60) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
