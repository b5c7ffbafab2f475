"""ChatEngine: the one path from a question to a cited answer (CLI, TUI and server all use it)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chatkit.config import GenerationConfig, Settings
from chatkit.errors import AdapterError, InputError
from chatkit.prompting import (
    ABSTAIN_TEXT,
    SYSTEM_PROMPT,
    Passage,
    PromptTurn,
    build_messages,
    fit_to_budget,
    parse_citations,
    says_abstain,
    split_sentences,
    standalone_query,
    strip_invalid_citations,
)
from chatkit.types import Answer, Citation, Event, Hit, Turn


class Searcher(Protocol):
    embedder: Any

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]: ...


class Generator(Protocol):
    model_id: str
    active_adapter: str | None

    @property
    def max_context(self) -> int: ...

    def render(self, messages: Sequence[dict[str, str]], add_generation_prompt: bool = True) -> list[int]: ...
    def stream(self, prompt_ids: Sequence[int], params: Any, cancel: threading.Event | None = None, stats: Any = None) -> Iterator[str]: ...
    def load_adapter(self, name: str, path: Path) -> None: ...
    def set_adapter(self, name: str | None) -> None: ...


@dataclass(frozen=True)
class ChatOptions:
    k: int | None = None
    mode: str | None = None
    adapter: str | None = None  # None: the engine's current adapter; "base": none
    cancel: threading.Event | None = None
    style: str | None = None  # generative | extractive | auto (None: from config)
    generation: GenerationConfig | None = None  # per-request sampling and length (None: settings.generation)


EXTRACTIVE_PASSAGE_WEIGHT = 0.5  # chosen on corpora/qa: token F1 0.300 at 0.0, 0.310 at 0.5, 0.308 at 1.0


def clean_question(question: str, limit: int) -> tuple[str, str | None]:
    """The question stripped; an over-long one is cut to `limit` characters with a warning."""
    question = question.strip()
    if not question:
        raise InputError("the question is empty", "type a question, e.g. chatkit ask \"What is LoRA?\"")
    if len(question) > limit:
        return question[:limit], f"the question was {len(question)} characters; only the first {limit} are used"
    return question, None


@dataclass
class Plan:
    """A question made ready to answer; `prompt_ids` are what the model will see."""

    question: str
    query: str
    hits: tuple[Hit, ...]
    given: tuple[Hit, ...]
    prompt_ids: list[int]
    style: str
    timings: dict[str, float]
    started: float
    warning: str | None = None
    abstain_reason: str = ""
    best_similarity: float = 0.0


def passage_of(hit: Hit) -> Passage:
    return Passage(hit.chunk.title, hit.chunk.heading, hit.chunk.text)


class ChatEngine:
    def __init__(self, settings: Settings, searcher: Searcher, generator: Generator, adapters_dir: Path | None = None,
                 resolve_adapter: Callable[[str], Path] | None = None) -> None:
        self.settings = settings
        self.searcher = searcher
        self.generator = generator
        self.adapters_dir = adapters_dir
        # The runtime passes the registry's lookup, which also refuses adapters made for another base model.
        self.resolve_adapter = resolve_adapter

    # --- adapters -----------------------------------------------------------------------------

    def use_adapter(self, name: str | None) -> None:
        """Switch adapters on the warm base model ('base' or None: no adapter)."""
        if name in (None, "", "base"):
            self.generator.set_adapter(None)
            return
        assert name is not None
        if self.resolve_adapter is not None:
            path = self.resolve_adapter(name)
        else:
            path = (self.adapters_dir / name) if self.adapters_dir else Path(name)
        if not path.is_dir():
            raise AdapterError(f"unknown adapter '{name}'", "`chatkit adapters ls` lists them; use 'base' for none")
        self.generator.load_adapter(name, path)
        self.generator.set_adapter(name)

    @property
    def adapter_name(self) -> str:
        return self.generator.active_adapter or "base"

    # --- answering ----------------------------------------------------------------------------

    def clean_question(self, question: str) -> tuple[str, str | None]:
        return clean_question(question, self.settings.engine.max_question_chars)

    def plan(self, question: str, history: Sequence[Turn] = (), options: ChatOptions | None = None) -> Plan:
        """Everything before generation: clean question, retrieve, decide abstention, fit the prompt."""
        opts = options or ChatOptions()
        started = time.perf_counter()
        question, warning = self.clean_question(question)
        if opts.adapter is not None:
            self.use_adapter(opts.adapter)
        k = opts.k or self.settings.engine.passages
        query = standalone_query(question, [t.question for t in history])
        hits = tuple(self.searcher.search(query, k=k, mode=opts.mode))
        timings = {"retrieval_s": time.perf_counter() - started}
        best = max((h.dense_score or 0.0 for h in hits), default=0.0)
        style = opts.style or self.settings.engine.answer_style
        if not hits or best < self.settings.engine.abstain_threshold:
            return Plan(question, query, hits, hits, [], style, timings, started, warning, abstain_reason="weak retrieval", best_similarity=best)
        turns = [PromptTurn(t.question, tuple(passage_of(h) for h in t.hits), t.answer) for t in history]
        turns.append(PromptTurn(question, tuple(passage_of(h) for h in hits)))
        gen = opts.generation or self.settings.generation
        budget = min(gen.context_tokens, self.generator.max_context) - gen.max_new_tokens
        turns, kept = fit_to_budget(turns, lambda m: len(self.generator.render(m)), budget, SYSTEM_PROMPT)
        prompt_ids = self.generator.render(build_messages(turns, SYSTEM_PROMPT)) if style != "extractive" else []
        return Plan(question, query, hits, hits[:kept], prompt_ids, style, timings, started, warning, best_similarity=best)

    def chat(self, question: str, history: Sequence[Turn] = (), options: ChatOptions | None = None) -> Iterator[Event]:
        """Events: retrieval (hits), token (text), answer (the final Answer); error on failure."""
        from chatkit.generation import GenParams
        from chatkit.generation.hf import StreamStats

        opts = options or ChatOptions()
        plan = self.plan(question, history, opts)
        if plan.warning:
            yield Event("progress", text=plan.warning, data={"warning": True})
        yield Event("retrieval", hits=plan.hits, data={"query": plan.query, "seconds": plan.timings["retrieval_s"]})
        if plan.abstain_reason:
            yield Event("token", text=ABSTAIN_TEXT)
            yield Event("answer", answer=self.finish(plan, ABSTAIN_TEXT),
                        data={"reason": plan.abstain_reason, "best_similarity": plan.best_similarity})
            return
        pieces: list[str] = []
        complete = True
        if plan.style == "extractive":
            text = self.extractive_answer(plan.question, plan.given)
            pieces.append(text)
            yield Event("token", text=text)
        else:
            stats = StreamStats()
            try:
                for piece in self.generator.stream(plan.prompt_ids, GenParams.from_settings(opts.generation or self.settings.generation),
                                                   cancel=opts.cancel, stats=stats):
                    pieces.append(piece)
                    yield Event("token", text=piece)
            except Exception as exc:  # a crash mid-answer keeps the partial answer, marked incomplete
                complete = False
                yield Event("error", text=f"generation failed: {exc}")
            complete = complete and stats.stopped != "cancelled"
            plan.timings.update(prefill_s=stats.prefill_s, decode_s=stats.decode_s, new_tokens=float(stats.new_tokens),
                                prompt_tokens=float(stats.prompt_tokens), tokens_per_s=stats.tokens_per_s)
        answer = self.finish(plan, "".join(pieces), complete)
        if answer.timings.get("fallback"):
            yield Event("token", text="\n\n" + answer.text, data={"fallback": True})
        yield Event("answer", answer=answer)

    def finish(self, plan: Plan, raw: str, complete: bool = True) -> Answer:
        """Parse citations, detect abstention, fall back to extractive sentences when the text is unusable."""
        timings = dict(plan.timings)
        if plan.abstain_reason:
            timings["total_s"] = time.perf_counter() - plan.started
            return Answer(ABSTAIN_TEXT, (), plan.hits, abstained=True, timings=timings)
        given = plan.given
        text = raw.strip()
        abstained = says_abstain(text)
        cited, dropped = parse_citations(text, len(given))
        if complete and plan.style == "auto" and not abstained and self._unusable(text, cited):
            text = self.extractive_answer(plan.question, given)
            cited, dropped = parse_citations(text, len(given))
            timings["fallback"] = 1.0
        text = strip_invalid_citations(text, len(given)) if dropped else text
        if abstained and not text.startswith(ABSTAIN_TEXT):
            text = f"{ABSTAIN_TEXT} {text}".strip()
        citations = tuple(self._citation(n, given[n - 1]) for n in cited)
        timings["total_s"] = time.perf_counter() - plan.started
        return Answer(text, citations, given, abstained=abstained, timings=timings, dropped_citations=dropped, complete=complete)

    def ask(self, question: str, history: Sequence[Turn] = (), options: ChatOptions | None = None) -> Answer:
        answer = None
        for event in self.chat(question, history, options):
            if event.kind == "answer":
                answer = event.answer
        assert answer is not None
        return answer

    @staticmethod
    def _citation(n: int, hit: Hit) -> Citation:
        return Citation(n, hit.chunk.doc_id, hit.chunk.title, hit.chunk.source, hit.chunk.heading)

    @staticmethod
    def _unusable(text: str, cited: list[int]) -> bool:
        words = text.split()
        if len(words) < 4 or not cited:
            return True
        # Degenerate loops: a small model repeating one phrase.
        return len(set(words)) < 0.3 * len(words)

    def extractive_answer(self, question: str, hits: Sequence[Hit], max_sentences: int = 2) -> str:
        """The passages' sentences closest to the question, each cited."""
        import numpy as np

        candidates = [(n, s) for n, h in enumerate(hits, start=1) for s in split_sentences(h.chunk.text)]
        if not candidates:
            return ABSTAIN_TEXT
        vecs = self.searcher.embedder.encode([question] + [s for _, s in candidates])
        sims = vecs[1:] @ vecs[0]
        # A sentence is judged with its passage: the passage's own similarity to the question carries
        # the context a lone sentence lacks ("It also ..."), weighted by EXTRACTIVE_PASSAGE_WEIGHT.
        passage_sim = np.array([hits[n - 1].dense_score or 0.0 for n, _ in candidates])
        score = sims + EXTRACTIVE_PASSAGE_WEIGHT * passage_sim
        order = np.argsort(-score)
        chosen = sorted(order[:max_sentences].tolist())
        chosen = [i for i in chosen if score[i] >= score[order[0]] - 0.15]
        return " ".join(f"{candidates[i][1]} [{candidates[i][0]}]" for i in chosen)
