"""The worker imports none of the tools' extras (aftersale[tools]: plots, progress bars), so its
image installs without them."""

from __future__ import annotations

import subprocess
import sys


def test_the_worker_imports_no_plotting_or_progress_bars():
    code = (
        "import sys, streams.runtime.app, streams.cli, streams.web, streams.ops; "
        "print(sorted(m for m in ('matplotlib', 'tqdm') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
