"""`chatkit stats` on a hand-built conversation store: every figure checked by hand."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from chatkit.conversations import ConversationStore
from chatkit.errors import InputError
from chatkit.evaluation.usage import parse_since, percentile, usage_stats
from tests.conftest import run_cli

DAY = 86400.0
NOW = time.time()


def _day(days_ago: float) -> float:
    """A moment on the local date `days_ago` days back, clear of midnight and never in the future:
    noon on past days, today halfway between midnight and now (before noon, noon is still to come)."""
    t = time.localtime(NOW - days_ago * DAY)
    midnight = time.mktime((t.tm_year, t.tm_mon, t.tm_mday, 0, 0, 0, 0, 0, -1))
    return midnight + min(12 * 3600.0, (NOW - midnight) / 2)


def add(store: ConversationStore, when: float, adapter: str = "", total: float = 1.0, tps: float = 0.0,
        abstained: bool = False, complete: bool = True, rating: int | None = None, source: str = "cli") -> None:
    conv = store.new_conversation("q")
    tid = store.start_turn(conv, "question?", model="m", adapter=adapter, source=source)
    timings = {"retrieval_s": 0.1, "total_s": total}
    if tps:
        timings |= {"tokens_per_s": tps, "new_tokens": 10.0, "prefill_s": 0.2}
    store.finish_turn(tid, "answer [1]", abstained, timings, complete)
    if rating is not None:
        store.rate(conv, 0, rating)
    store.db.execute("UPDATE turns SET created = ? WHERE id = ?", (when, tid))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    store = ConversationStore(home / "conversations.sqlite")
    d0, d1, old = _day(0), _day(1), _day(30)
    # base: 4 answers over two days, one abstained, one rated good and one bad
    add(store, d1, total=1.0, rating=1)
    add(store, d1, total=2.0, abstained=True, source="tui")
    add(store, d0, total=3.0, rating=-1, source="server")
    add(store, d0, total=4.0)
    # adapter 'tutor': 2 generated answers and one cancelled; rated good twice
    add(store, d0, adapter="tutor", total=2.0, tps=20.0, rating=1, source="server")
    add(store, d0, adapter="tutor", total=6.0, tps=40.0, rating=1, source="server")
    add(store, d0, adapter="tutor", total=9.0, tps=30.0, complete=False, source="server")
    # a month ago: outside --since 7d
    add(store, old, total=100.0, rating=-1)
    store.close()
    return home


def test_figures_per_adapter(home: Path) -> None:
    store = ConversationStore(home / "conversations.sqlite")
    stats = usage_stats(store.all_turns(), since=parse_since("7d"))
    base, tutor, overall = stats.adapters["base"], stats.adapters["tutor"], stats.overall
    assert set(stats.adapters) == {"base", "tutor"}
    day0, day1 = time.strftime("%Y-%m-%d", time.localtime(_day(0))), time.strftime("%Y-%m-%d", time.localtime(_day(1)))
    assert base.per_day == {day1: 2, day0: 2} and base.answers == 4 and base.incomplete == 0
    assert base.latency_p50_s == pytest.approx(2.5) and base.latency_p95_s == pytest.approx(3.85)
    assert base.abstentions == 1 and base.abstention_rate == pytest.approx(0.25)
    assert (base.good, base.bad, base.feedback_ratio) == (1, 1, 0.5)
    assert base.tokens_per_s is None and base.sources == {"cli": 2, "server": 1, "tui": 1}
    assert tutor.answers == 2 and tutor.incomplete == 1 and tutor.questions == 3
    assert tutor.latency_p50_s == pytest.approx(4.0)  # the cancelled answer's 9 s is not a latency
    assert tutor.tokens_per_s == pytest.approx(30.0) and tutor.generated_tokens == 30
    assert tutor.first_token_p50_s == pytest.approx(0.3)
    assert tutor.abstention_rate == 0.0 and tutor.feedback_ratio == 1.0
    assert overall.answers == 6 and overall.per_day == {day1: 2, day0: 4}
    assert (overall.good, overall.bad) == (3, 1) and overall.feedback_ratio == pytest.approx(0.75)
    everything = usage_stats(store.all_turns())
    assert everything.overall.answers == 7 and everything.adapters["base"].bad == 2


def test_stats_cli_json_table_and_png(home: Path, tmp_path: Path) -> None:
    r = run_cli("--home", str(home), "stats", "--since", "7d", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["overall"]["answers"] == 6 and data["adapters"]["tutor"]["tokens_per_s"] == 30.0
    assert data["adapters"]["base"]["abstention_rate"] == 0.25 and data["adapters"]["base"]["latency_p95_s"] == 3.85

    png = tmp_path / "out" / "usage.png"
    r = run_cli("--home", str(home), "stats", "--png", str(png))
    assert r.returncode == 0, r.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "tutor" in r.stdout and "base" in r.stdout and "all" in r.stdout

    r = run_cli("--home", str(home), "stats", "--since", "yesterday-ish")
    assert r.returncode == 1 and r.stderr.startswith("error: --since wants a span") and "Traceback" not in r.stderr
    r = run_cli("--home", str(tmp_path / "empty"), "stats")
    assert r.returncode == 0 and "no turns" in r.stderr


def test_since_and_percentiles() -> None:
    assert parse_since("") == 0.0 and parse_since("all") == 0.0
    assert parse_since("7d", now=1000.0 * DAY) == pytest.approx(993.0 * DAY)
    assert parse_since("24h", now=100000.0) == pytest.approx(100000.0 - 86400)
    assert parse_since("2w", now=30 * DAY) == pytest.approx(16 * DAY)
    assert parse_since("2025-01-31") == time.mktime((2025, 1, 31, 0, 0, 0, 0, 0, -1))
    with pytest.raises(InputError):
        parse_since("7 days")
    assert percentile([], 50) is None and percentile([5.0], 95) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5


def test_store_reads_where_each_turn_came_from(tmp_path: Path) -> None:
    store = ConversationStore(tmp_path / "c.sqlite")
    conv = store.new_conversation()
    store.start_turn(conv, "q", source="server")
    store.start_turn(conv, "q2")
    assert [t.source for t in store.turns(conv)] == ["server", "cli"]
