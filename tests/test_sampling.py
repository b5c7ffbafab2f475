"""The token choice and stop-sequence cut shared by both generation backends."""

from __future__ import annotations

import numpy as np

from chatkit.generation.params import GenParams
from chatkit.generation.sampling import choose, cut_at_stop


def test_stop_sequence_spanning_pieces_is_cut_where_it_starts() -> None:
    assert cut_at_stop("Hello wor", "wor", ("<|im_end|>",)) == ("wor", False)
    assert cut_at_stop("Answer.<|im", ".<|im", ("<|im",)) == (".", True)
    # The stop began in an earlier piece: nothing of this one is shown.
    assert cut_at_stop("Answer<|im_end", "_end", ("<|im",)) == ("", True)
    assert cut_at_stop("a STOP b", " b", ("", "STOP")) == ("", True)
    assert cut_at_stop("no stops", "stops", ()) == ("stops", False)


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
