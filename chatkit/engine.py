"""ChatEngine: the one path from a question to a cited answer (CLI, TUI and server all use it)."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chatkit.config import GenerationConfig, Settings
from chatkit.definitions import definition_first, definition_term
from chatkit.errors import AdapterError, InputError, ModelError
from chatkit.extractive import choose_quotes, evidence_passages
from chatkit.generation.base import Generator, GenParams, StreamStats
from chatkit.prompting import (
    ABSTAIN_TEXT,
    SYSTEM_PROMPT,
    Passage,
    PromptTurn,
    build_messages,
    fit_to_budget,
    parse_citations,
    question_parts,
    says_abstain,
    standalone_query,
    strip_invalid_citations,
)
from chatkit.retrieval.support import TermStatistics, question_support
from chatkit.types import Answer, Citation, Event, Hit, Turn


class Searcher(Protocol):
    embedder: Any

    def search(self, query: str, k: int | None = None, mode: str | None = None) -> list[Hit]: ...
    def term_statistics(self) -> TermStatistics: ...

    @property
    def skipped(self) -> Sequence[Any]: ...  # collections left out of the search, each with a `.message`


class GenerationCache(Protocol):
    """Generations kept by key (eval re-runs reuse them); the engine computes the key."""

    def get(self, key: str) -> tuple[str, dict[str, float]] | None: ...
    def put(self, key: str, text: str, stats: dict[str, float]) -> None: ...


@dataclass(frozen=True)
class ChatOptions:
    k: int | None = None
    mode: str | None = None
    adapter: str | None = None  # None: the engine's current adapter; "base": none
    cancel: threading.Event | None = None
    style: str | None = None  # generative | extractive | auto (None: from config)
    generation: GenerationConfig | None = None  # per-request sampling and length (None: settings.generation)
    retrieval: bool = True  # False: plain chat, `messages` go to the model as they are; no passages, no citations
    messages: tuple[dict[str, str], ...] = ()
    cache: GenerationCache | None = None
    answer_tokens: int | None = None  # cut any answer, extractive ones too, to this many tokens (OpenAI's max_tokens)




DEFINITION_CANDIDATES = 20  # how deep a "what is X" question looks for the passage that defines X
_PRONOUN = re.compile(r"\b(it|its|they|them|their|this|that|these|those)\b", re.IGNORECASE)


def part_queries(question: str) -> list[str]:
    """The search query of each part of a multi-part question; a later part that says "it" or "they"
    carries the first part for its context."""
    parts = question_parts(question)
    return [parts[0]] + [f"{part} ({parts[0]})" if _PRONOUN.search(part) else part for part in parts[1:]]


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
    retrieval: bool = True


@dataclass
class Outcome:
    """How a generation ended."""

    complete: bool = True
    error: str = ""


class ChatEngine:
    """Answers questions; the dialogue model is loaded on first generative use (`load_generator`), so
    search and extractive answers never pay for it."""

    def __init__(self, settings: Settings, searcher: Searcher, generator: Generator | None = None,
                 adapters_dir: Path | None = None, resolve_adapter: Callable[[str], Path] | None = None,
                 load_generator: Callable[[], Generator] | None = None,
                 default_adapter: Callable[[], str | None] | None = None) -> None:
        self.settings = settings
        self.searcher = searcher
        self._generator = generator
        self._load_generator = load_generator
        self._load_lock = threading.Lock()
        # An adapter chosen before the model loaded is applied when it loads; unchosen, `default_adapter`
        # decides then (after loading, which may install the shipped adapters).
        self._wanted_adapter: str | None = None
        self._adapter_chosen = False
        self._default_adapter = default_adapter
        self.adapters_dir = adapters_dir
        # The assembly passes the registry's lookup, which also refuses adapters made for another base model.
        self.resolve_adapter = resolve_adapter

    # --- the dialogue model -------------------------------------------------------------------

    @property
    def generator(self) -> Generator:
        """The dialogue model, loaded now if it was not yet."""
        if self._generator is None:
            with self._load_lock:
                if self._generator is None:
                    if self._load_generator is None:
                        raise ModelError("this engine has no dialogue model", "build it with chatkit.assembly.build_engine")
                    generator = self._load_generator()
                    self._generator = generator
                    try:
                        self._apply_adapter(self._pending_adapter())
                    except BaseException:  # a broken default adapter must fail every answer, not only the first
                        self._generator = None
                        raise
        return self._generator

    @property
    def generator_loaded(self) -> bool:
        return self._generator is not None

    @property
    def model_id(self) -> str:
        """The dialogue model's id, or "" while it is not loaded (no answer has used it)."""
        return self._generator.model_id if self._generator is not None else ""

    def style_of(self, options: ChatOptions | None = None) -> str:
        opts = options or ChatOptions()
        if not opts.retrieval:
            return "generative"
        return opts.style or self.settings.engine.answer_style

    def needs_generator(self, options: ChatOptions | None = None) -> bool:
        return self.style_of(options) != "extractive"

    # --- adapters -----------------------------------------------------------------------------

    def use_adapter(self, name: str | None) -> None:
        """Switch adapters on the warm base model ('base' or None: no adapter); before the model is
        loaded the choice is remembered and applied when it loads."""
        wanted = None if name in (None, "", "base") else name
        if self._generator is None:
            self._wanted_adapter, self._adapter_chosen = wanted, True
            return
        self._apply_adapter(wanted)

    def _pending_adapter(self) -> str | None:
        if self._adapter_chosen or self._default_adapter is None:
            return self._wanted_adapter
        name = self._default_adapter()
        return None if name in (None, "", "base") else name

    def _apply_adapter(self, name: str | None) -> None:
        generator = self.generator
        if name is None:
            generator.set_adapter(None)
            return
        if self.resolve_adapter is not None:
            path = self.resolve_adapter(name)
        else:
            path = (self.adapters_dir / name) if self.adapters_dir else Path(name)
        if not path.is_dir():
            raise AdapterError(f"unknown adapter '{name}'", "`chatkit adapters ls` lists them; use 'base' for none")
        generator.load_adapter(name, path)
        generator.set_adapter(name)

    @property
    def adapter_name(self) -> str:
        if self._generator is None:
            return self._pending_adapter() or "base"
        return self._generator.active_adapter or "base"

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
        if not opts.retrieval:
            return self._plain_plan(question, opts, started, warning)
        k = opts.k or self.settings.engine.passages
        query = standalone_query(question, [t.question for t in history])
        parts = part_queries(question) if not history else [query]
        hits = self._search_parts(parts, k, opts.mode) if len(parts) > 1 else tuple(self._search(query, k, opts.mode))
        timings = {"retrieval_s": time.perf_counter() - started}
        best = max((h.dense_score or 0.0 for h in hits), default=0.0)
        style = self.style_of(opts)
        reason = self.refusal_reason(query, hits, best)  # a follow-up is judged with the question it follows
        if reason:
            return Plan(question, query, hits, hits, [], style, timings, started, warning, abstain_reason=reason, best_similarity=best)
        if style == "extractive":  # no prompt: the model is not needed (nor loaded)
            return Plan(question, query, hits, hits, [], style, timings, started, warning, best_similarity=best)
        turns = [PromptTurn(t.question, self.evidence(t.question, t.hits), t.answer) for t in history]
        turns.append(PromptTurn(question, self.evidence(question, hits)))
        gen = opts.generation or self.settings.generation
        generator = self.generator
        budget = min(gen.context_tokens, generator.max_context) - gen.max_new_tokens
        turns, kept = fit_to_budget(turns, lambda m: len(generator.render(m)), budget, SYSTEM_PROMPT)
        prompt_ids = generator.render(build_messages(turns, SYSTEM_PROMPT))
        return Plan(question, query, hits, hits[:kept], prompt_ids, style, timings, started, warning, best_similarity=best)

    def evidence(self, question: str, hits: Sequence[Hit]) -> tuple[Passage, ...]:
        """What the model is shown of the passages (engine.evidence_sentences; data synth makes training rows the same way)."""
        return tuple(evidence_passages(question, [h.chunk for h in hits], self.searcher.embedder,
                                       self.settings.engine.evidence_sentences))

    def _search(self, query: str, k: int, mode: str | None) -> list[Hit]:
        if definition_term(query) is None:
            return self.searcher.search(query, k=k, mode=mode)
        return definition_first(query, self.searcher.search(query, k=max(k, DEFINITION_CANDIDATES), mode=mode), k)

    def _search_parts(self, queries: Sequence[str], k: int, mode: str | None) -> tuple[Hit, ...]:
        """Each part's own passages, taken in turns (its best first), so every part has its evidence."""
        ranked = [self._search(q, k, mode) for q in queries]
        merged: list[Hit] = []
        seen: set[tuple[str, int]] = set()
        for rank in range(k):
            for hits in ranked:
                if rank < len(hits) and (key := (hits[rank].collection, hits[rank].chunk.chunk_id)) not in seen:
                    seen.add(key)
                    merged.append(dataclasses.replace(hits[rank], rank=len(merged) + 1))
        return tuple(merged[:k])

    def _plain_plan(self, question: str, opts: ChatOptions, started: float, warning: str | None) -> Plan:
        """retrieval=False: the chat as the caller sent it, straight to the model."""
        messages = list(opts.messages) or [{"role": "user", "content": question}]
        gen = opts.generation or self.settings.generation
        prompt_ids = self.generator.render(messages)
        room = min(gen.context_tokens, self.generator.max_context)
        if len(prompt_ids) + gen.max_new_tokens > room:
            raise InputError(f"the chat is {len(prompt_ids)} tokens; with {gen.max_new_tokens} for the answer "
                             f"it does not fit the {room}-token context", "send fewer or shorter messages, or a smaller max_tokens")
        return Plan(question, "", (), (), prompt_ids, "generative", {"retrieval_s": 0.0}, started, warning, retrieval=False)

    def chat(self, question: str, history: Sequence[Turn] = (), options: ChatOptions | None = None) -> Iterator[Event]:
        """Events: retrieval (hits), token (text), answer (the final Answer); error on failure.
        The answer event's data carries `prompt_ids` (what the model saw; empty when it was not used)."""
        opts = options or ChatOptions()
        plan = self.plan(question, history, opts)
        if plan.warning:
            yield Event("progress", text=plan.warning, data={"warning": True})
        yield Event("retrieval", hits=plan.hits, data={"query": plan.query, "seconds": plan.timings["retrieval_s"],
                                                      "retrieval": plan.retrieval})
        if plan.abstain_reason:
            yield Event("token", text=ABSTAIN_TEXT)
            yield Event("answer", answer=self.finish(plan, ABSTAIN_TEXT),
                        data={"reason": plan.abstain_reason, "best_similarity": plan.best_similarity, "prompt_ids": []})
            return
        pieces: list[str] = []
        complete = True
        if plan.style == "extractive":
            text, cut = self._clip(self.extractive_answer(plan.question, plan.given), opts)
            if cut:
                plan.timings["cut"] = 1.0
            pieces.append(text)
            yield Event("token", text=text)
        else:
            outcome = Outcome()
            for piece in self._generate(plan, opts, outcome):
                pieces.append(piece)
                yield Event("token", text=piece)
            complete = outcome.complete
            if outcome.error:
                yield Event("error", text=f"generation failed: {outcome.error}")
        answer = self.finish(plan, "".join(pieces), complete)
        if answer.timings.get("fallback"):
            text, cut = self._clip(answer.text, opts)
            answer = dataclasses.replace(answer, text=text, timings={**answer.timings, **({"cut": 1.0} if cut else {})})
            yield Event("token", text="\n\n" + answer.text, data={"fallback": True})
        yield Event("answer", answer=answer, data={"prompt_ids": plan.prompt_ids})

    def _generate(self, plan: Plan, opts: ChatOptions, outcome: Outcome) -> Iterator[str]:
        """The one place that generates and times an answer (timings go into `plan.timings`)."""
        gen = opts.generation or self.settings.generation
        params = GenParams.from_settings(gen)
        key = self._cache_key(plan, params) if opts.cache is not None else ""
        cached = opts.cache.get(key) if opts.cache is not None else None
        if cached is not None:
            text, saved = cached
            plan.timings.update(saved, cached=1.0)
            yield text
            return
        stats = StreamStats()
        began = time.perf_counter()
        pieces: list[str] = []
        try:
            for piece in self.generator.stream(plan.prompt_ids, params, cancel=opts.cancel, stats=stats):
                pieces.append(piece)
                yield piece
        except Exception as exc:  # a crash mid-answer keeps the partial answer, marked incomplete
            outcome.complete, outcome.error = False, str(exc) or type(exc).__name__
        outcome.complete = outcome.complete and stats.stopped != "cancelled"
        measured = {"prefill_s": stats.prefill_s, "decode_s": stats.decode_s, "new_tokens": float(stats.new_tokens),
                    "prompt_tokens": float(stats.prompt_tokens), "tokens_per_s": stats.tokens_per_s,
                    "generation_s": time.perf_counter() - began, "stopped_at_length": float(stats.stopped == "length")}
        plan.timings.update(measured)
        if opts.cache is not None and outcome.complete:
            opts.cache.put(key, "".join(pieces), measured)

    def _cache_key(self, plan: Plan, params: GenParams) -> str:
        g = self.generator
        parts = [g.model_id, g.dtype, self.adapter_name, plan.style, repr(params), ",".join(map(str, plan.prompt_ids))]
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def _clip(self, text: str, opts: ChatOptions) -> tuple[str, bool]:
        """Quoted (not generated) text held to a generated answer's limits: it ends before the first stop
        string, and within `answer_tokens` (True when that cut it)."""
        ends = [i for i in (text.find(s) for s in (opts.generation or self.settings.generation).stop if s) if i >= 0]
        text = text[:min(ends)].rstrip() if ends else text
        return self._cut_to_tokens(text, opts.answer_tokens) if opts.answer_tokens is not None else (text, False)

    def _cut_to_tokens(self, text: str, limit: int) -> tuple[str, bool]:
        """The longest word prefix of `text` within `limit` dialogue-model tokens."""
        count = self.generator.count_tokens
        if count(text) <= limit:
            return text, False
        words = text.split(" ")
        low, high = 0, len(words)
        while low < high:
            mid = (low + high + 1) // 2
            if count(" ".join(words[:mid])) <= limit:
                low = mid
            else:
                high = mid - 1
        return " ".join(words[:low]), True

    def finish(self, plan: Plan, raw: str, complete: bool = True) -> Answer:
        """Parse citations, detect abstention, fall back to extractive sentences when the text is unusable."""
        timings = dict(plan.timings)
        if plan.abstain_reason:
            timings["total_s"] = time.perf_counter() - plan.started
            return Answer(ABSTAIN_TEXT, (), plan.hits, abstained=True, timings=timings)
        if not plan.retrieval:
            timings["total_s"] = time.perf_counter() - plan.started
            return Answer(raw.strip(), (), (), abstained=False, timings=timings, complete=complete)
        given = plan.given
        text = raw.strip()
        # Quoted sentences may mention the refusal phrase (the handbook does); only a written answer can refuse.
        abstained = plan.style != "extractive" and says_abstain(text)
        cited, dropped = parse_citations(text, len(given))
        # In auto style refusing is the gate's job (plan): past it a passage may hold the answer, so a
        # model that refuses anyway, or writes nothing citable, is replaced by the passages' own sentences.
        if complete and plan.style == "auto" and (abstained or self._unusable(text, cited)):
            text = self.extractive_answer(plan.question, given)
            cited, dropped = parse_citations(text, len(given))
            abstained = False
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

    def reference_nll(self, prompt_ids: Sequence[int], reference: str) -> float:
        """Mean negative log-likelihood per token of `reference` after `prompt_ids` (eval's perplexity)."""
        ref_ids = list(self.generator.tokenizer(reference, add_special_tokens=False)["input_ids"])
        nll, n = self.generator.answer_nll(prompt_ids, ref_ids)
        return nll / max(n, 1)

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

    def extractive_answer(self, question: str, hits: Sequence[Hit]) -> str:
        """The passages' sentences that best answer the question, each cited."""
        quotes = choose_quotes(part_queries(question), hits, self.searcher.embedder)
        if not quotes:
            return ABSTAIN_TEXT
        return " ".join(f"{q.text} [{q.n}]" for q in quotes)

    def refusal_reason(self, question: str, hits: Sequence[Hit], best: float) -> str:
        """Why the passages cannot answer `question` ("" when they may): the gate, not the model, refuses."""
        cfg = self.settings.engine
        if not hits or best < cfg.abstain_threshold:
            return "weak retrieval"
        support = question_support(question, hits, self.searcher.term_statistics())
        if support.coverage < cfg.min_question_coverage:
            return f"the passages lack the question's terms (coverage {support.coverage:.2f})"
        if support.unknown_terms and best < cfg.unknown_term_similarity:
            return f"no document mentions {', '.join(support.unknown_terms)}"
        return ""
