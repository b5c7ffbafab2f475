"""The token choice and stop-sequence cut of the one decode loop (generation/base.py)."""

from __future__ import annotations

import numpy as np

from chatkit.generation.base import GenParams
from chatkit.generation.sampling import choose, shown_until


def test_stop_string_spanning_pieces_is_cut_where_it_starts_and_its_start_held_back() -> None:
    stops = ("\nQuestion:", "<|im")
    assert shown_until("Hello wor", 6, stops) == (9, False)
    # A possible start of a stop string is held back until the next pieces decide ...
    assert shown_until("Answer.\nQue", 0, stops) == (7, False)
    assert shown_until("Answer.<", 7, stops) == (7, False)
    # ... then cut where the stop began, even when that was pieces ago ...
    assert shown_until("Answer.\nQuestion: why", 7, stops) == (7, True)
    # ... or released when it turned out to be ordinary text.
    assert shown_until("Answer.\nQuick", 7, stops) == (13, False)
    assert shown_until("a STOP b", 0, ("", "STOP")) == (2, True)
    assert shown_until("no stops", 3, ()) == (8, False)


def test_greedy_with_repetition_penalty_and_seeded_sampling() -> None:
    greedy = GenParams(temperature=0.0, repetition_penalty=2.0)
    logits = np.array([3.0, 2.0, -1.0], dtype=np.float32)
    seen = np.array([True, False, False])
    assert choose(logits.copy(), seen, greedy, None) == 1  # 3/2 = 1.5 < 2
    assert choose(logits.copy(), np.zeros(3, bool), greedy, None) == 0
    # A negative logit is pushed further down, not up.
    neg = np.array([-1.0, -1.5, -9.0], dtype=np.float32)
    assert choose(neg, np.array([True, False, False]), greedy, None) == 1
    sampled = GenParams(temperature=1.0, top_p=0.5, repetition_penalty=1.0, seed=3)
    peaked = np.array([5.0, 0.0, 0.0], dtype=np.float32)
    picks = {choose(peaked.copy(), np.zeros(3, bool), sampled, np.random.default_rng(i)) for i in range(20)}
    assert picks == {0}  # top-p 0.5 keeps only the dominant token
    flat = GenParams(temperature=1.0, top_p=1.0, repetition_penalty=1.0)
    draws = [choose(np.zeros(3, np.float32), np.zeros(3, bool), flat, np.random.default_rng(i)) for i in range(60)]
    assert set(draws) == {0, 1, 2}
