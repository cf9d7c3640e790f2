"""Caption hygiene measures: length, n-gram loops, boilerplate openings; filter rules drop on them."""
from __future__ import annotations

import re
from collections.abc import Sequence

_WORD = re.compile(r"\w+(?:'\w+)?", re.UNICODE)

# Openings that describe the medium rather than the content; matched on lower-cased words.
BOILERPLATE_OPENINGS = (
    "the video shows", "the video features", "the video depicts", "the video captures", "the video begins with",
    "the video is", "this video shows", "this video features", "in this video", "in the video",
    "the clip shows", "this clip shows", "in this clip", "the footage shows", "this footage shows",
    "the image shows", "this image shows", "in this image", "the scene shows", "the frames show",
)


def words(text: str) -> list[str]:
    """Lower-cased words of `text` (letters, digits, inner apostrophes)."""
    return [w.lower() for w in _WORD.findall(text)]


def repetition(tokens: Sequence[str], n: int = 3) -> float:
    """Share of the word n-grams that repeat an earlier n-gram (0: none, near 1: one phrase looping).

    Akin to the repeated n-gram filters of Gopher's MassiveText (Rae et al. 2021), counted in n-grams, not characters.
    """
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    return 1.0 - len(set(grams)) / len(grams) if grams else 0.0


def boilerplate_words(tokens: Sequence[str], openings: Sequence[str] = BOILERPLATE_OPENINGS) -> int:
    """Words of the longest boilerplate opening the caption starts with (0 = none)."""
    best = 0
    for opening in openings:
        o = words(opening)
        if len(o) > best and list(tokens[: len(o)]) == o:
            best = len(o)
    return best


def hygiene_columns(caption: str | None, ngram: int = 3, openings: Sequence[str] = BOILERPLATE_OPENINGS) -> dict:
    """The clip's caption_* columns; all null when there is no caption."""
    if caption is None:
        return {"caption_words": None, "caption_repetition": None, "caption_boilerplate_words": None}
    tokens = words(caption)
    return {
        "caption_words": len(tokens),
        "caption_repetition": repetition(tokens, ngram),
        "caption_boilerplate_words": boilerplate_words(tokens, openings),
    }
