"""A worker started by WorkerRun (tests, benchmarks) does not outlive the process that started it:
a SIGKILLed test run leaves no worker holding ports, memory and partitions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from streams.tools.worker_process import REPO

from .test_engine import settings  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return stat[0] != "Z"  # a zombie has exited


def test_a_worker_dies_with_the_process_that_started_it(settings, tmp_path):  # noqa: F811
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from streams.config import Settings
        from streams.tools.worker_process import WorkerRun
        s = Settings(bootstrap_servers={settings.bootstrap_servers!r}, app_id={settings.app_id!r}, partitions=4)
        w = WorkerRun(s, Path({str(tmp_path / "w")!r}), Path({str(tmp_path / "w.log")!r})).start(wait="health")
        print(w.proc.pid, flush=True)
        time.sleep(600)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        worker_pid = int(parent.stdout.readline())
        assert _alive(worker_pid)
        parent.send_signal(signal.SIGKILL)  # no clean-up code runs in the parent
        parent.wait(timeout=10)
        deadline = time.monotonic() + 30
        while _alive(worker_pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(worker_pid), "the worker outlived the process that started it"
    finally:
        if parent.poll() is None:
            parent.kill()
