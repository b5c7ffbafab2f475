"""`chatkit --help` start-up time vs `python -c "import json"`, measured in the same run.

Goal: ratio <= 3 (heavy libraries are imported inside the verbs, never at start-up).
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time


def timed(cmd: list[str], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    chatkit = shutil.which("chatkit") or ""
    cli = [chatkit, "--help"] if chatkit else [sys.executable, "-m", "chatkit", "--help"]
    baseline = [sys.executable, "-c", "import json"]
    timed(cli, 3), timed(baseline, 3)  # warm the page cache
    base, ours = [], []
    for _ in range(runs):  # interleave so machine noise hits both alike
        base += timed(baseline, 1)
        ours += timed(cli, 1)
    b, c = statistics.median(base), statistics.median(ours)
    print(f"python -c 'import json': median {b * 1000:.1f} ms over {runs} runs")
    print(f"{' '.join(cli)}: median {c * 1000:.1f} ms over {runs} runs")
    print(f"ratio: {c / b:.2f} (goal <= 3)")


if __name__ == "__main__":
    main()
