"""`chatkit serve` under a burst: the real verb in a subprocess with the tiny 4-layer Llama (from
tests/conftest.py) and a small collection, on 127.0.0.1, hit by N concurrent chat requests (httpx async).

Reports status-code counts, latency p50/p95 (all answers, and the 200s), /health latency during the
burst, and the server's resident memory before and after (VmRSS, and VmHWM: its peak). Asserts no 5xx
other than the queue's 503, that every 200 carries sources, and that the server still answers after.

    .venv/bin/python benchmarks/serve_load.py [--requests 200] [--queue-size 16] [--style generative] [--tokens 24]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

DOCS = {
    "lora.md": "# LoRA\n\n## Why LoRA is cheap\n\nLoRA freezes the pre-trained weights and trains two small low-rank "
               "matrices. Far fewer parameters are trained, so memory and compute drop.\n",
    "faiss.md": "# FAISS\n\n## Indexes\n\nFAISS finds nearest neighbour vectors with flat and HNSW indexes.\n",
    "perplexity.md": "# Perplexity\n\nPerplexity is the exponential of the average negative log-likelihood per token.\n",
}
QUESTIONS = ["What does LoRA freeze?", "Which indexes does FAISS have?", "What is perplexity?", "Why is LoRA cheap?"]


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak) of a process, from /proc (Linux)."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0])
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pct(values: list[float], q: float) -> float:
    xs = sorted(values)
    return xs[min(len(xs) - 1, round((len(xs) - 1) * q / 100))] if xs else float("nan")


async def burst(url: str, n: int, style: str, tokens: int) -> tuple[list[tuple[int, float, dict]], list[float]]:
    import httpx

    limits = httpx.Limits(max_connections=n + 8, max_keepalive_connections=n + 8)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        async def one(i: int) -> tuple[int, float, dict]:
            body = {"model": "chatkit", "messages": [{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}],
                    "style": style, "max_tokens": tokens}
            t = time.perf_counter()
            r = await client.post("/v1/chat/completions", json=body)
            return r.status_code, time.perf_counter() - t, {"retry_after": r.headers.get("retry-after"), "json": r.json()}

        health: list[float] = []

        async def probe() -> None:
            for _ in range(10):
                t = time.perf_counter()
                r = await client.get("/health")
                assert r.status_code == 200
                health.append(time.perf_counter() - t)
                await asyncio.sleep(0.05)

        results, _ = await asyncio.gather(asyncio.gather(*(one(i) for i in range(n))), probe())
        return list(results), health


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--queue-size", type=int, default=16)
    ap.add_argument("--style", default="generative", choices=["generative", "extractive", "auto"])
    ap.add_argument("--tokens", type=int, default=24, help="max_tokens per answer")
    args = ap.parse_args()

    import httpx

    from chatkit.config import Paths, load_settings
    from chatkit.indexing import ensure_collection
    from tests.conftest import build_tiny_model

    with tempfile.TemporaryDirectory(prefix="chatkit-serve-load-") as tmp:
        work = Path(tmp)
        model = build_tiny_model(work / "tiny-llama")
        docs = work / "docs"
        docs.mkdir()
        for name, text in DOCS.items():
            (docs / name).write_text(text, encoding="utf-8")
        home = work / "home"
        ensure_collection(load_settings(), Paths(home).ensure(), "notes", docs)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        cmd = [sys.executable, "-m", "chatkit", "--home", str(home), "--set", f"models.dialogue={model}",
               "--set", "models.dtype=float32", "--set", "engine.abstain_threshold=0.2",
               "--set", f"server.queue_size={args.queue_size}", "serve", "--port", str(port), "--collection", "notes"]
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        server = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 180
            while True:
                assert server.poll() is None, f"server exited: {server.stdout.read() if server.stdout else ''}"
                try:
                    if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.2)
            warm = httpx.post(f"{url}/v1/chat/completions", timeout=60, json={
                "messages": [{"role": "user", "content": QUESTIONS[0]}], "style": args.style, "max_tokens": args.tokens})
            assert warm.status_code == 200, warm.text
            before = memory_kb(server.pid)

            started = time.perf_counter()
            results, health = asyncio.run(burst(url, args.requests, args.style, args.tokens))
            wall = time.perf_counter() - started
            after = memory_kb(server.pid)
            last = httpx.post(f"{url}/v1/chat/completions", timeout=60,
                              json={"messages": [{"role": "user", "content": QUESTIONS[1]}], "style": args.style})
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(20)
            except subprocess.TimeoutExpired:
                server.kill()

    codes = collections.Counter(code for code, _, _ in results)
    ok = [t for code, t, _ in results if code == 200]
    busy = [info for code, _, info in results if code == 503]
    print(f"chatkit serve, tiny 4-layer Llama, {args.style} answers of <= {args.tokens} tokens, "
          f"queue_size {args.queue_size}, {args.requests} concurrent requests, OMP_NUM_THREADS={env['OMP_NUM_THREADS']}")
    print(f"wall time: {wall:.2f} s")
    print("status codes: " + ", ".join(f"{code}: {n}" for code, n in sorted(codes.items())))
    every = [t for _, t, _ in results]
    print(f"latency, all requests: p50 {pct(every, 50) * 1000:.0f} ms, p95 {pct(every, 95) * 1000:.0f} ms")
    if ok:
        print(f"latency, 200s: p50 {pct(ok, 50) * 1000:.0f} ms, p95 {pct(ok, 95) * 1000:.0f} ms, "
              f"throughput {len(ok) / wall:.1f} answers/s")
    if busy:
        print(f"503s: Retry-After {sorted({b['retry_after'] for b in busy})} s")
    print(f"/health during the burst: median {statistics.median(health) * 1000:.1f} ms, max {max(health) * 1000:.1f} ms")
    print(f"server RSS before: {before['VmRSS'] / 1024:.0f} MiB (peak {before['VmHWM'] / 1024:.0f} MiB); "
          f"after: {after['VmRSS'] / 1024:.0f} MiB (peak {after['VmHWM'] / 1024:.0f} MiB)")
    print(f"after the burst: {last.status_code}")

    bad = {code: n for code, n in codes.items() if code >= 500 and code != 503}
    assert not bad, f"server errors: {bad}"
    assert all(info["json"].get("sources") for code, _, info in results if code == 200), "a 200 without sources"
    assert all(b["retry_after"] for b in busy), "a 503 without Retry-After"
    assert last.status_code == 200
    print("ok: no 5xx other than 503")


if __name__ == "__main__":
    main()
