"""A real `aftersale worker` process for integration tests, and helpers around it."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


class WorkerProcess:
    def __init__(self, settings, data_dir: Path, log_path: Path, instance_id: str = "w0"):
        self.settings = settings
        self.data_dir = data_dir
        self.log_path = log_path
        self.instance_id = instance_id
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    def start(self, timeout: float = 90.0) -> "WorkerProcess":
        from deploy.broker import free_port

        # Keep the web port across restarts: with static membership the group coordinator hands the
        # restarted worker its old member metadata, and Faust checks the URL in it is its own.
        self.port = self.port or free_port()
        env = {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.bootstrap_servers,
            "AFTERSALE_APP_ID": self.settings.app_id,
            "AFTERSALE_PARTITIONS": str(self.settings.partitions),
            "AFTERSALE_INSTANCE_ID": self.instance_id,
            "AFTERSALE_SESSION_TIMEOUT": "10",
        }
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--clock", "event", "--data-dir", str(self.data_dir),
             "--web-port", str(self.port), "--loglevel", "info"],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=1):
                    return self
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"worker did not come up:\n{self.log_tail()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, no final commit, no flush."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return ""
