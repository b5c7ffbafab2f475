from __future__ import annotations

from chatkit.prompting import (
    ABSTAIN_TEXT,
    SYSTEM_PROMPT,
    Passage,
    PromptTurn,
    build_messages,
    fit_to_budget,
    parse_citations,
    parse_user_message,
    says_abstain,
    standalone_query,
    strip_invalid_citations,
)

P = [Passage("LoRA and QLoRA", "How LoRA works", "LoRA freezes the base weights. " * 20),
     Passage("Perplexity", "", "Perplexity is exp of mean NLL. " * 20),
     Passage("FAISS", "Indexes", "FAISS finds nearest vectors. " * 20)]


def words(messages: list[dict[str, str]]) -> int:
    return sum(len(m["content"].split()) for m in messages)


def test_messages_round_trip_through_the_parser() -> None:
    msgs = build_messages([PromptTurn("What is LoRA?", tuple(P[:2]), "It freezes weights [1]."), PromptTurn("Why?", (P[2],))])
    assert msgs[0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    question, blocks = parse_user_message(msgs[1]["content"])
    assert question == "What is LoRA?" and len(blocks) == 2 and blocks[0].startswith("[1] LoRA and QLoRA > How LoRA works")
    assert parse_user_message(build_messages([PromptTurn("q")])[1]["content"]) == ("q", [])


def test_budget_trims_old_passages_then_old_turns_then_current_passages_never_the_question() -> None:
    long_q = "What exactly does LoRA freeze " + "really " * 30 + "?"
    turns = [PromptTurn("first?", tuple(P), "a [1]"), PromptTurn("second?", tuple(P), "b [2]"), PromptTurn(long_q, tuple(P))]
    full = words(build_messages(turns))
    kept, n = fit_to_budget(turns, words, full - 50)
    assert kept[0].passages == () and len(kept) == 3 and n == 3
    kept, n = fit_to_budget(turns, words, words(build_messages([turns[-1]])) + 5)
    assert len(kept) == 1 and n == 3
    kept, n = fit_to_budget(turns, words, 200)
    assert kept[-1].question == long_q and 1 <= n < 3
    assert words(build_messages(kept)) <= 200
    kept, n = fit_to_budget(turns, words, 10)
    assert kept[-1].question == long_q and n == 0


def test_citations_parse_and_invalid_ones_are_dropped() -> None:
    assert parse_citations("LoRA [1] is cheap [3][1]. See [7].", 3) == ([1, 3], 1)
    assert parse_citations("no citations", 3) == ([], 0)
    assert strip_invalid_citations("a [1] b [9]", 2) == "a [1] b "


def test_abstention_phrases() -> None:
    assert says_abstain(ABSTAIN_TEXT)
    assert says_abstain("Sorry, the passages do not contain that.")
    assert not says_abstain("LoRA adds low-rank matrices [1].")


def test_follow_ups_are_searched_with_the_previous_question() -> None:
    assert standalone_query("why is it cheaper?", ["What is LoRA?"]) == "What is LoRA? why is it cheaper?"
    assert standalone_query("How does FAISS build an HNSW index over vectors?", ["What is LoRA?"]).startswith("How")
    assert standalone_query("what is lora", []) == "what is lora"


def test_passage_quoting_a_numbered_line_stays_one_block() -> None:
    tricky = Passage("Prompt format", "", "A user turn looks like:\n[1] Title > Heading\ntext\n\n[2] Other")
    msgs = build_messages([PromptTurn("q?", (tricky, P[1]))])
    _, blocks = parse_user_message(msgs[1]["content"])
    assert len(blocks) == 2 and blocks[1].startswith("[2] Perplexity")


def test_multi_part_questions_are_split_into_their_parts() -> None:
    from chatkit.prompting import question_parts

    assert question_parts("What is LoRA and why is it cheaper than full fine-tuning?") == ["What is LoRA", "why is it cheaper than full fine-tuning"]
    assert question_parts("what is bert? how is it trained") == ["what is bert", "how is it trained"]
    # "and" inside one question, or a lone question, is no split.
    assert question_parts("how does data synth come up with questions and answers") == ["how does data synth come up with questions and answers"]
    assert question_parts("BERT vs GPT?") == ["BERT vs GPT?"]
