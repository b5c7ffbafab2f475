"""Number types for argparse: a flag out of range is refused while parsing, in one line naming the flag.

argparse words the error `argument -k: -1 is out of range (allowed: N >= 1)`, using the same interval wording
as the config checks (`chatkit.config.Bounds`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from chatkit.config import SEED_MAX, Bounds, field_specs, show_number


def _number(kind: type[int] | type[float], bounds: Bounds, name: str) -> Callable[[str], int | float]:
    noun = "an integer" if kind is int else "a number"

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {noun} (allowed: {bounds.describe('N')})") from None
        if not bounds.admits(value):
            raise argparse.ArgumentTypeError(f"{show_number(value)} is out of range (allowed: {bounds.describe('N')})")
        return value

    parse.__name__ = name  # argparse names the type in some messages
    return parse


positive_int = _number(int, Bounds(ge=1), "positive_int")
non_negative_int = _number(int, Bounds(ge=0), "non_negative_int")
seed = _number(int, Bounds(ge=0, le=SEED_MAX), "seed")
fraction = _number(float, Bounds(ge=0, le=1), "fraction")
fraction_below_one = _number(float, Bounds(ge=0, lt=1), "fraction_below_one")


def like_key(key: str) -> Callable[[str], int | float]:
    """A flag that overrides a config key (`ask -k` for engine.passages) takes the same range as the key."""
    spec = field_specs()[key]
    return _number(int if spec.type in (int, "int") else float, spec.metadata["bounds"], key.rsplit(".", 1)[1])


port = like_key("server.port")
