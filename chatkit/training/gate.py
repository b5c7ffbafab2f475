"""The promotion gate: an adapter becomes the default only when the evaluation says it is better.

`chatkit eval compare NAME` writes `<data dir>/reports/compare-NAME/verdict.json` with
`{"better": bool, ...}`.
"""

from __future__ import annotations

import json

from chatkit.config import Paths
from chatkit.errors import AdapterError


def check_verdict(paths: Paths, name: str) -> dict[str, object]:
    path = paths.reports / f"compare-{name}" / "verdict.json"
    hint = f"run `chatkit eval compare {name}` first, or pass --force"
    if not path.is_file():
        raise AdapterError(f"no evaluation of '{name}' against the current default ({path} is missing)", hint)
    try:
        verdict = json.loads(path.read_text(encoding="utf-8"))
        better = verdict["better"]
        if not isinstance(better, bool):
            raise TypeError
    except (OSError, ValueError, KeyError, TypeError):
        raise AdapterError(f"{path} is unreadable (wants {{\"better\": true|false}})", hint) from None
    if not better:
        raise AdapterError(f"the evaluation found '{name}' not better than the current default ({path})",
                           "train a better adapter, or pass --force to promote it anyway")
    return dict(verdict)
