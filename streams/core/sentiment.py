"""Sentiment of what the customer writes (support tickets and replies), with VADER.

VADER is a lexicon and rules, no model download: fast and deterministic. The analyzer loads its
lexicon once, at import, and is shared (it holds no per-call state).

Text that arrives sealed (streams/privacy.py) was scored where it was read in the clear: the
event's `sentiment` carries that score and the text is not read here.
"""

from __future__ import annotations

from functools import lru_cache

from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

_ANALYZER = SentimentIntensityAnalyzer()
SEALED_PREFIX = "sealed:v1:"  # text sealed with the customer's key: not readable here
_MAX_CHARS = 2000  # a whole e-mail thread pasted in a ticket says no more than its start


def compound(text: str | None) -> float:
    """VADER's normalized score in [-1, 1]; 0 for no text."""
    if not text or not text.strip() or text.startswith(SEALED_PREFIX):
        return 0.0
    return _score(text[:_MAX_CHARS])


@lru_cache(maxsize=1024)  # canned replies and macros repeat; VADER costs ~100 us a text
def _score(text: str) -> float:
    return _ANALYZER.polarity_scores(text)["compound"]


def is_negative(text: str | None, threshold: float, score: float | None = None) -> bool:
    """`score`: the compound score computed upstream, when the text travels sealed."""
    return (compound(text) if score is None else score) <= threshold
