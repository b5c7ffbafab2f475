"""The token choice and stop-sequence cut both generation backends share, in numpy."""

from __future__ import annotations

from typing import Any

from chatkit.generation.params import GenParams


def choose(logits: Any, seen: Any, params: GenParams, rng: Any) -> int:
    """Repetition penalty on the `seen` tokens, then greedy or temperature + top-p. Modifies `logits`."""
    import numpy as np

    if params.repetition_penalty != 1.0:
        penal = logits[seen]
        logits[seen] = np.where(penal > 0, penal / params.repetition_penalty, penal * params.repetition_penalty)
    if params.temperature <= 0:
        return int(np.argmax(logits))
    z = logits.astype(np.float64) / params.temperature
    probs = np.exp(z - z.max())
    probs /= probs.sum()
    if params.top_p < 1.0:
        order = np.argsort(-probs, kind="stable")
        sorted_p = probs[order]
        keep = np.cumsum(sorted_p) - sorted_p < params.top_p
        probs = np.zeros_like(probs)
        probs[order[keep]] = sorted_p[keep]
        probs /= probs.sum()
    return int(rng.choice(len(probs), p=probs))


def cut_at_stop(emitted: str, piece: str, stops: tuple[str, ...]) -> tuple[str, bool]:
    """What of the newest `piece` (the tail of `emitted`) to show, and whether a stop sequence ended the answer.

    A stop sequence may span pieces, so it is searched in all the text so far; only its part in `piece` is cut.
    """
    found = [emitted.find(s) for s in stops if s and s in emitted]
    if not found:
        return piece, False
    keep = min(found) - (len(emitted) - len(piece))
    return piece[:max(keep, 0)], True
