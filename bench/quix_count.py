"""quix-streams' stateful count over aftersale's input topics: the anchor `aftersale bench --only e2e`
sets the worker beside. Per event a keyed state update in RocksDB with its changelog, and one output
record; quix-streams' own checkpointing (commit every second, like the worker). Runs in its own
virtualenv (streams/tools/benchmarks.py makes it): quixstreams pins confluent-kafka below 2.13."""

import argparse
import os

from quixstreams import Application


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--group", required=True)
    p.add_argument("--topics", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--state-dir", required=True)
    p.add_argument("--web-port", type=int)  # given to every bench worker; unused here
    args = p.parse_args()
    app = Application(
        broker_address=os.environ["KAFKA_BOOTSTRAP_SERVERS"],
        consumer_group=args.group,
        auto_offset_reset="earliest",
        state_dir=args.state_dir,
        commit_interval=1.0,
        loglevel="WARNING",
    )
    output = app.topic(args.output, key_serializer="bytes", value_serializer="bytes")

    def count(value, state):
        state.set("n", state.get("n", 0) + 1)
        return value

    for name in args.topics.split(","):
        sdf = app.dataframe(app.topic(name, key_deserializer="bytes", value_deserializer="bytes"))
        sdf.apply(count, stateful=True).to_topic(output)
    app.run()


if __name__ == "__main__":
    main()
