"""The `aftersale` command's arguments: bad values are one line and a non-zero exit, help shows
every command, the defaults and the benchmarks."""

from __future__ import annotations

import pytest

from streams.cli import build_parser, main

COMMANDS = [
    "demo",
    "worker",
    "topics",
    "simulate",
    "schemas",
    "erase",
    "bench",
    "ingest",
    "sender",
    "replay",
    "backtest",
    "broker",
]


@pytest.mark.parametrize(
    "argv, says",
    [
        (["simulate", "--orders", "-5"], "--orders: must be at least 1, got -5"),
        (["simulate", "--orders", "many"], "'many' is not a whole number"),
        (["simulate", "--rate", "0"], "--rate: must be above 0"),
        (["demo", "--bad", "-1"], "--bad: must be at least 0"),
        (["replay", "--input", "/nonexistent.jsonl", "--out", "x"], "/nonexistent.jsonl does not exist"),
        (["replay", "--out", "x"], "one of the arguments --input --simulate is required"),
        (["replay", "--input", ".", "--simulate", "3", "--out", "x"], "not allowed with argument"),
        (
            ["backtest", "--simulate", "10", "--out", "x", "--from-replay", "/nonexistent"],
            "/nonexistent does not exist",
        ),
        (["nonsense"], "invalid choice: 'nonsense'"),
    ],
)
def test_bad_arguments_are_one_line_and_exit_2(capsys, argv, says):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    out = capsys.readouterr()
    assert out.out == ""
    lines = out.err.strip().splitlines()
    assert len(lines) == 1, out.err
    assert says in lines[0]
    assert lines[0].startswith("aftersale")


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for command in COMMANDS:
        assert f"\n    {command} " in text, command
    sub = build_parser()._subparsers._group_actions[0]
    assert sorted(sub.choices) == sorted(COMMANDS)  # a new command must be added to this test and the docs


def test_help_shows_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["simulate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "simulated orders (default: 200)" in text
    assert "(None: as fast as possible)" in text
    assert "(default: False)" not in text and "(default: None)" not in text


def test_every_option_has_help():
    parser = build_parser()
    for name, sub in parser._subparsers._group_actions[0].choices.items():
        for action in sub._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"


def test_bench_help_lists_the_benchmarks(capsys):
    from streams.tools import bench

    with pytest.raises(SystemExit):
        main(["bench", "--help"])
    text = capsys.readouterr().out
    assert bench.BENCHMARKS  # registered on import
    for name in bench.BENCHMARKS:
        assert f"\n  {name} " in text, name


def test_an_unknown_compression_is_refused_at_start_up(monkeypatch):
    from streams.config import Settings

    monkeypatch.setenv("AFTERSALE_COMPRESSION", "brotli")
    with pytest.raises(SystemExit, match="AFTERSALE_COMPRESSION must be one of none, gzip, snappy, lz4, zstd"):
        Settings.from_env()
    monkeypatch.setenv("AFTERSALE_COMPRESSION", "LZ4")
    assert Settings.from_env().compression == "lz4"
