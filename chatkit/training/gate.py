"""The promotion gate: an adapter becomes the default only when its latest comparison against the
current default (the base model or the promoted adapter) does not find it worse.

`chatkit eval compare --adapter NAME` writes `<data dir>/reports/compare-NAME/verdict.json` with
`{"better": bool, "worse": bool, "verdict": str, "baseline": "base"|ADAPTER, "token_f1": [lo, hi], ...}`;
"worse" means the 95 % CI of any headline metric lies entirely below 0: token F1, citation precision,
keyword recall, groundedness, answered-when-answerable (wrongful refusals) or refused-when-unanswerable
(see chatkit.evaluation.compare.HEADLINE). Verdicts written before the refusal metrics existed only
looked at token F1 and citation precision: compare again before promoting on one of those.
"""

from __future__ import annotations

import json

from chatkit.config import Paths
from chatkit.errors import AdapterError


def check_verdict(paths: Paths, name: str, current: str | None = None) -> dict[str, object]:
    """Raise unless `name` has a comparison against `current` (None: the base model) that is not worse."""
    baseline = current or "base"
    path = paths.reports / f"compare-{name}" / "verdict.json"
    hint = f"run `chatkit eval compare --qa corpora/qa/dev.jsonl --adapter {name}` first, or pass --force"
    if not path.is_file():
        raise AdapterError(f"no evaluation of '{name}' against the current default ({path} is missing)", hint)
    try:
        verdict = json.loads(path.read_text(encoding="utf-8"))
        better = verdict["better"]
        worse = verdict.get("worse", not better)  # files without "worse" predate it: only "better" passed then
        if not isinstance(better, bool) or not isinstance(worse, bool):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise AdapterError(f"{path} is unreadable (wants {{\"better\": true|false}})", hint) from None
    compared_to = verdict.get("baseline", baseline)
    if compared_to != baseline and name != current:
        raise AdapterError(f"'{name}' was compared against '{compared_to}', but the current default is '{baseline}'", hint)
    if worse:
        word = "worse than" if "worse" in verdict else "not better than"
        reasons = "; ".join(str(r) for r in verdict.get("reasons", []))
        raise AdapterError(f"the evaluation found '{name}' {word} the current default '{baseline}'" + (f": {reasons}" if reasons else f" ({path})"),
                           "train a better adapter, or pass --force to promote it anyway")
    return dict(verdict)
