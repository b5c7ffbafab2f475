"""The token choice (in numpy) and the stop-string cut of the decode loop (base.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chatkit.generation.base import GenParams


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


def shown_until(emitted: str, shown: int, stops: tuple[str, ...]) -> tuple[int, bool]:
    """How far the answer text `emitted` may be shown (it is shown up to `shown`), and whether a stop string ended it.

    A stop string may span pieces, so an end of the text that could begin one is held back until the next
    pieces decide; text already shown never holds the start of a stop string, so the search starts at `shown`.
    """
    stops = tuple(s for s in stops if s)
    found = [i for i in (emitted.find(s, shown) for s in stops) if i >= 0]
    if found:
        return min(found), True
    held = max((k for s in stops for k in range(1, len(s)) if emitted.endswith(s[:k])), default=0)
    return max(shown, len(emitted) - held), False
