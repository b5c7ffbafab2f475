"""Question wording for `chatkit data synth`: questions from headings and definition sentences, the casual
and misspelt ways learners type them, two-part questions, comparisons, and "which course / book / paper"
questions from resource lists. Pure string functions; deterministic for a given seed."""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Collection
from dataclasses import dataclass

SKIP_HEADINGS = re.compile(r"^(exercises?|summary|further reading|references|see also|next steps?|key terms|"
                           r"quiz|check yourself|recap|contents|overview)$", re.IGNORECASE)
_QUESTION_HEAD = re.compile(r"^(why|how|when|where|what|which|who)\s+(.+?)\s+(is|are|was|were|works?|does|do|can|"
                            r"helps?|matters?|fails?|changes?)\b\s*(.*)$", re.IGNORECASE)
_DEFINITION = re.compile(r"^(an?\s+|the\s+)?([A-Za-z][\w\-./+ ]{1,48}?(?:\s*\([^)]{2,40}\))?)\s+"
                         r"(is|are|means|refers to|stands for)\s+(?:an?|the|how|what|when|where)\b", re.IGNORECASE)
_PRONOUN = re.compile(r"^(every|no|another|any|many|few|other|it|this|that|these|those|they|there|here|each|both|one|some|most|all|its|their|such|in|on|for|with|at|by|from|to|when|if|after|before|during|unlike|like|once|while|because)\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z0-9]+")
STOP = frozenset("a an the of to and or in on for is are was were be by with as at it this that what how why when "
                 "which who does do can you me about i my your from into than then".split())
_VERB_FIX = {"works": "work", "helps": "help", "matters": "matter", "fails": "fail", "changes": "change"}
_PREPOSITIONS = frozenset("into of in for to with on from by at about between over under after before".split())
_WH = ("why", "how", "what", "when", "which", "who", "where")


def normalize(question: str) -> str:
    return " ".join(_WORD.findall(question.lower()))


def seeded(seed: int, *keys: str) -> random.Random:
    """A generator that depends only on the seed and the keys, so one question's variants never depend on
    which other questions were made before it."""
    return random.Random(int(hashlib.sha1("\x1f".join((str(seed), *keys)).encode()).hexdigest(), 16))


def lower_first(text: str) -> str:
    # Keep acronyms and names ("LoRA", "BM25", "FAISS") as written.
    first, _, rest = text.partition(" ")
    if len(first) > 1 and first[1:].lower() != first[1:]:
        return text
    return first[:1].lower() + first[1:] + (" " + rest if rest else "")


def heading_question(heading: str, title: str) -> str | None:
    h = " ".join(heading.replace("`", "").split()).rstrip(".:?")
    if not h or SKIP_HEADINGS.match(h) or len(h.split()) > 10:
        return None
    m = _QUESTION_HEAD.match(h)
    if m:
        wh, subject, verb, rest = m.group(1).capitalize(), m.group(2), m.group(3).lower(), m.group(4)
        if verb in ("does", "do") and rest:  # already a question: "How much memory does chatkit use"
            return f"{h[:1].upper()}{h[1:]}?"
        if verb in ("is", "are", "was", "were", "can"):
            return f"{wh} {verb} {subject}{' ' + rest if rest else ''}?"
        aux = "do" if verb in ("do",) or (verb in _VERB_FIX.values()) else "does"
        return f"{wh} {aux} {subject} {_VERB_FIX.get(verb, verb)}{' ' + rest if rest else ''}?"
    if re.match(r"^(error|warning):", h, re.IGNORECASE):
        return f'What does "{h}" mean?'
    words = h.split()
    if words[0].lower() in _WH:
        # "What the data dir contains" -> "What does the data dir contain?"
        if 2 < len(words) <= 6 and re.fullmatch(r"[a-z]+[^s]s", words[-1]) and words[-2].lower() not in _PREPOSITIONS:
            return f"{words[0].capitalize()} does {' '.join(words[1:-1])} {words[-1][:-1]}?"
        # "How chatkit splits documents into chunks": which word is the verb is guesswork; this asks it whole.
        return f"Can you explain {words[0].lower()} {' '.join(words[1:])}?"
    topic = lower_first(h)
    templates = (f"What should I know about {topic}?", f"Can you explain {topic}?",
                 f"What does the material say about {topic} in {title}?" if title and title.lower() != h.lower()
                 else f"Tell me about {topic}.", f"Explain {topic}, please.")
    return templates[int(hashlib.sha1(h.encode()).hexdigest(), 16) % len(templates)]


@dataclass(frozen=True)
class Term:
    """What a definition sentence defines: "A large language model (LLM) is a ..." -> article "a ", verb "is"."""

    article: str
    name: str
    verb: str


def definition_term(sentence: str) -> Term | None:
    m = _DEFINITION.match(sentence)
    if not m:
        return None
    article, name, verb = (m.group(1) or "").lower(), m.group(2).strip(), m.group(3).lower()
    if _PRONOUN.match(name) or len(name.split()) > 6 or name.lower() in STOP:
        return None
    return Term(article, name, verb)


def definition_question(sentence: str) -> str | None:
    term = definition_term(sentence)
    return None if term is None else definition_questions(term)[0]


def definition_questions(term: Term) -> list[str]:
    """The ways learners ask what a term is; the first is the plain one."""
    be = "are" if term.verb == "are" else "is"
    name = lower_first(term.name)
    return [f"What {be} {term.article}{name}?", f"what's {name}", f"explain {name}"]


def _gerund_to_verb(word: str, vocabulary: Collection[str]) -> str | None:
    """"indexing" -> "index", "making" -> "make", "running" -> "run", checked against the corpus's own words."""
    stem = word[:-3]
    for guess in (stem, stem + "e", stem[:-1] if len(stem) > 2 and stem[-1] == stem[-2] else ""):
        if guess and guess in vocabulary:
            return guess
    return None


def _typo(text: str, rng: random.Random) -> str | None:
    """One transposed or dropped letter in one longer word (never the first word)."""
    words = text.split(" ")
    longer = [i for i, w in enumerate(words) if i > 0 and len(w) >= 6 and w.isalpha() and w.islower()]
    if not longer:
        return None
    i = rng.choice(longer)
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2 :] if rng.random() < 0.5 and w[j] != w[j + 1] else w[:j] + w[j + 1 :]
    return " ".join(words)


def casual_variants(question: str, seed: int, vocabulary: Collection[str] = (), limit: int = 3) -> list[str]:
    """How a learner might type the same question: lowercase, no question mark, "whats", "how do i", "pls",
    one misspelt word. Every variant differs from the question after normalization."""
    rng = seeded(seed, question)
    q = question.rstrip("?. ").strip()
    low = q[:1].lower() + q[1:]
    rewrites: list[str] = []
    m = re.match(r"^What (is|are) (.+)$", q)
    if m:
        rewrites += [f"whats {m.group(2)}", f"{m.group(2)}?? what {m.group(1)} it" if m.group(1) == "is" else
                     f"what {m.group(1)} {m.group(2)} exactly", f"can you explain {m.group(2)} pls"]
    m = re.match(r"^How (does|do) (.+)$", q)
    if m:
        rewrites += [f"how {m.group(1)} {m.group(2)} actually", f"explain how {m.group(2)} pls"]
    m = re.match(r"^(?:What should I know about|Can you explain|Tell me about|Explain) (.+?)(?:, please)?(?: in .+)?$", q)
    if m:
        topic = m.group(1)
        words = topic.split()
        verb = _gerund_to_verb(words[0].lower(), vocabulary) if words[0].lower().endswith("ing") else None
        if verb:
            rewrites.append(f"how do i {verb} {' '.join(words[1:])}".strip())
        rewrites += [f"whats the deal with {topic}", f"{topic} pls"]
    rewrites += [f"{low} pls", f"quick question: {low}", f"hey, {low}"]
    casual = []
    for text in rewrites:
        text = text.lower()
        if rng.random() < 0.5:
            misspelt = _typo(text, rng)
            text = misspelt or text
        casual.append(text + ("?" if rng.random() < 0.4 else ""))
    rng.shuffle(casual)
    out: list[str] = []
    seen = {normalize(question)}
    for text in casual:
        key = normalize(text)
        if key not in seen:
            seen.add(key)
            out.append(text)
    return out[:limit]


def multi_part_question(first: str, second: str, seed: int) -> str | None:
    """"What is X?" + "How does Y work?" -> "What is X and how does Y work?" (or as two sentences)."""
    if not (first.endswith("?") and second.endswith("?")) or first.split()[0].lower() not in _WH \
            or second.split()[0].lower() not in _WH:
        return None
    if seeded(seed, first, second).random() < 0.6:
        return f"{first[:-1]} and {lower_first(second)}"
    return f"{first} Also, {lower_first(second)}"


def comparison_question(a: str, b: str, seed: int) -> str:
    templates = (f"{a} vs {b}?", f"What is the difference between {a} and {b}?",
                 f"How does {a} differ from {b}?", f"{a} or {b}, what's the difference?")
    return seeded(seed, a, b).choice(templates)


@dataclass(frozen=True)
class Resource:
    """One entry of a resource list: its name sentence, what it is and what it is good for."""

    kind: str  # course | book | paper | dataset | blog post | resource
    name: str
    description: str | None
    good_for: str | None


def resource_kind(title: str, heading: str, text: str) -> str:
    if re.search(r"\b(benchmark|dataset)\b", text, re.IGNORECASE):
        return "dataset"
    where = f"{heading} {title}".lower()
    for word, kind in (("blog", "blog post"), ("course", "course"), ("book", "book"), ("paper", "paper")):
        if word in where:
            return kind
    return "resource"


def _clause(text: str) -> str:
    # "why gating helps (lesson 12); read it ..." -> "why gating helps"
    return re.split(r"\s*[;(]", text.rstrip(". "), maxsplit=1)[0].strip().rstrip(",")


def recommendation_questions(res: Resource, seed: int) -> list[str]:
    rng = seeded(seed, res.name)
    out = []
    if res.good_for:
        g = _clause(res.good_for)
        if 2 <= len(g.split()) <= 16:
            first = g.split()[0].lower()
            if first in _WH:
                out.append(f"Which {res.kind} explains {g}?")
            elif re.match(r"^lessons? \d", g):
                out.append(f"Which {res.kind} goes with {g}?")
            else:
                out.append(rng.choice((f"Which {res.kind} does it recommend for {g}?",
                                       f"What {res.kind} would you recommend for {g}?",
                                       f"Which {res.kind} is good for {g}?")))
    if res.description:
        d = _clause(res.description)
        words = d.split()
        if 2 <= len(words) <= 14:
            if words[0].endswith("ed") and words[1].lower() in ("the", "a", "an", "that", "how"):
                out.append(f"Which {res.kind} {lower_first(d)}?")
            elif words[0] in ("Shows", "Builds", "Moves", "Introduces", "Explains", "Covers"):
                out.append(f"Which {res.kind} {words[0].lower()} {' '.join(words[1:])}?")
            else:
                out.append(f"Which {res.kind} covers {lower_first(d)}?")
    return out
