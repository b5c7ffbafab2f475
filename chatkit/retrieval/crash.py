"""Named points where the crash-consistency tests kill the process (SIGKILL) via CHATKIT_TEST_CRASH."""

from __future__ import annotations

import os
import signal

_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Kill this process at the n-th pass of `name` when CHATKIT_TEST_CRASH is `name` or `name:n`."""
    want = os.environ.get("CHATKIT_TEST_CRASH")
    if not want:
        return
    point, _, nth = want.partition(":")
    if point != name:
        return
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
