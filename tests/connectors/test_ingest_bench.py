"""The ingest benchmark runs and reports a figure against its same-run baseline."""

from __future__ import annotations

import pytest

from streams.tools import bench

pytestmark = pytest.mark.integration


def test_ingest_benchmark_is_registered_and_reports_a_ratio(kafka_bootstrap):
    registered = bench.BENCHMARKS["ingest"]
    assert registered.needs_broker
    figures = {f.name: f for f in registered.run({"bootstrap": kafka_bootstrap, "webhooks": 150, "concurrency": 8})}
    assert set(figures) == {"ingest.baseline_http_200", "ingest.webhooks_per_s", "ingest.p99_ms"}
    rate = figures["ingest.webhooks_per_s"]
    assert rate.baseline == "ingest.baseline_http_200" and rate.value > 0
    assert rate.ratio == pytest.approx(rate.value / figures["ingest.baseline_http_200"].value)
