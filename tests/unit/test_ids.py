"""Deterministic ids are uuid5 of the joined parts, whatever shortcut computes them."""

from __future__ import annotations

import uuid

from hypothesis import given, strategies as st

from streams.core.ids import _NAMESPACE, stable_id

parts = st.lists(st.one_of(st.none(), st.text(max_size=40), st.integers(), st.floats(allow_nan=False)), max_size=6)


@given(parts)
def test_stable_id_is_uuid5_of_the_joined_parts(values):
    name = "|".join("" if p is None else str(p) for p in values)
    assert stable_id(*values) == str(uuid.uuid5(_NAMESPACE, name))
