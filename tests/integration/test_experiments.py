"""Experiments on a real broker and worker: the worker reads AFTERSALE_EXPERIMENTS, a held-out
customer's message is audited `held_out` with its experiment and arm on the audit topic, the other
arm's message names them on the intent topic, and /metrics and /api/ops count both."""

from __future__ import annotations

import orjson
import pytest

from streams.core.experiments import assign, loads
from streams.tools.worker_process import http_get

from .test_engine import HOUR, T0, one_order, only, reader, settings  # noqa: F401  (fixtures)
from .test_returns import Feed, said
from .worker import WorkerProcess

pytestmark = pytest.mark.integration

EXPERIMENTS = """
[[experiment]]
id = "care-holdout"
messages = ["care_tips"]
arms = [{name = "held", weight = 1, hold = true}, {name = "sent", weight = 1}]
"""


def test_a_holdout_is_audited_and_named_on_both_topics(settings, reader, tmp_path):  # noqa: F811
    path = tmp_path / "experiments.toml"
    path.write_text(EXPERIMENTS)
    (exp,) = loads(EXPERIMENTS)
    held = next(f"C-x{n}" for n in range(100) if assign(exp, f"C-x{n}").name == "held")
    sent = next(f"C-x{n}" for n in range(100) if assign(exp, f"C-x{n}").name == "sent")
    worker = WorkerProcess(
        settings, settings.data_dir, tmp_path / "worker.log", env={"AFTERSALE_EXPERIMENTS": str(path)}
    ).start()
    try:
        feed = Feed(settings, reader)
        feed.send(*one_order("O-held", held), *one_order("O-sent", sent), until=said("delivered", "O-sent"))
        # Fashion: care tips the day after delivery at 10:00 local (T0 + 57 h).
        feed.ticks(T0 + 45 * HOUR, T0 + 60 * HOUR, until=said("care_tips", "O-sent"))
        feed.ticks(T0 + 60 * HOUR, T0 + 62 * HOUR)  # the held-out audit may come a little later
        (tips,) = [i for i in feed.intents(feed.seen) if i["intent_type"] == "care_tips"]
        assert tips["customer_id"] == sent
        assert (tips["experiment"], tips["arm"]) == ("care-holdout", "sent")
        assert tips["experiments"] == [{"experiment": "care-holdout", "arm": "sent"}]
        (out,) = [a for a in only(feed.seen, "decision-audit") if a["decision"] == "held_out"]
        assert (out["customer_id"], out["intent_type"]) == (held, "care_tips")
        assert (out["experiment"], out["arm"], out["reasons"]) == (
            "care-holdout",
            "held",
            ["experiment:care-holdout", "arm:held"],
        )
        status, body = http_get(worker.url("/metrics"), token=worker.token)
        text = body.decode()
        assert status == 200
        assert (
            'aftersale_experiment_outcomes_total{arm="held",experiment="care-holdout",outcome="held_out"} 1.0' in text
        )
        assert 'aftersale_experiment_outcomes_total{arm="sent",experiment="care-holdout",outcome="sent"} 1.0' in text
        status, body = http_get(worker.url("/api/ops"), token=worker.token)
        rows = {r["arm"]: r for r in orjson.loads(body)["experiments"]}
        assert (rows["held"]["held_out"], rows["sent"]["sent"], rows["held"]["units"] + rows["sent"]["units"]) == (
            1,
            1,
            2,
        )
        assert rows["held"]["control"] and not rows["sent"]["control"]
        assert rows["sent"]["rates"]["review_rate"]["value"][0] == 0.0  # delivered, not reviewed (yet)
    finally:
        worker.stop()
