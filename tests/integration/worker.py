"""A real `aftersale worker` process for integration tests (streams/tools/worker_process.py, which the
benchmarks and fault tests use too), with the defaults these tests want."""

from __future__ import annotations

from pathlib import Path

from streams.tools.worker_process import REPO, WorkerRun

__all__ = ["REPO", "WorkerProcess"]


class WorkerProcess(WorkerRun):
    """On event time, INFO logging, ready once it answers /health."""

    def __init__(self, settings, data_dir: Path, log_path: Path, instance_id: str = "w0", env: dict | None = None):
        super().__init__(settings, data_dir, log_path, clock="event", instance_id=instance_id, loglevel="info", env=env)

    def start(self, timeout: float = 90.0) -> "WorkerProcess":
        super().start(wait="health", timeout=timeout)
        return self
