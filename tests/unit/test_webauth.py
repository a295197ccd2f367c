"""The views' token (streams/webauth.py): what a request may present, and the token a worker keeps
when none is configured."""

from __future__ import annotations

import base64
import stat

from streams import webauth


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_the_token_is_accepted_as_bearer_or_as_basic_password():
    assert webauth.allowed("Bearer s3cret", "s3cret")
    assert webauth.allowed("bearer s3cret", "s3cret")
    assert webauth.allowed(basic("anyone", "s3cret"), "s3cret")
    assert webauth.allowed(basic("", "s3cret"), "s3cret")


def test_anything_else_is_refused():
    for header in (
        None,
        "",
        "Bearer",
        "Bearer wrong",
        "Bearer s3cret2",
        "Token s3cret",
        "s3cret",
        basic("s3cret", ""),
        "Basic not-base64!",
        "Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
    ):
        assert not webauth.allowed(header, "s3cret"), header


def test_without_a_token_nothing_is_allowed():
    assert not webauth.allowed("Bearer ", "")
    assert not webauth.allowed("Bearer x", None)


def test_a_worker_without_a_configured_token_makes_one_and_keeps_it(tmp_path):
    assert webauth.worker_token("configured", tmp_path) == "configured"
    assert not (tmp_path / webauth.TOKEN_FILE).exists()
    made = webauth.worker_token(None, tmp_path / "data")
    path = tmp_path / "data" / webauth.TOKEN_FILE
    assert len(made) >= 32 and path.read_text().strip() == made
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert webauth.worker_token(None, tmp_path / "data") == made  # a restart keeps it
