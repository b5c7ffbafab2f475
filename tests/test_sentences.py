"""The one sentence splitter (chatkit.corpus.sentences): chunk boundaries and quotable sentences."""

from __future__ import annotations

from chatkit.corpus.sentences import sentence_spans, split_sentences


def pieces(text: str) -> list[str]:
    return [text[a:b] for a, b in sentence_spans(text)]


def test_spans_split_at_sentence_ends_and_cover_the_text() -> None:
    text = "LoRA freezes the weights.  It trains two matrices! Does it help? \"Yes,\" they said."
    assert pieces(text) == ["LoRA freezes the weights.", "It trains two matrices!", "Does it help?", "\"Yes,\" they said."]


def test_abbreviations_and_decimals_are_not_boundaries() -> None:
    text = "Use a small rank, e.g. Rank 8 works. The loss fell from 2.5 to 1.75 in epoch 3. Dr. Smith agreed."
    assert pieces(text) == ["Use a small rank, e.g. Rank 8 works.", "The loss fell from 2.5 to 1.75 in epoch 3.", "Dr. Smith agreed."]


def test_list_items_and_paragraphs_are_boundaries() -> None:
    text = "Steps:\n- install the package\n- build the index\n1. run a query\n\nA new paragraph starts here"
    assert pieces(text) == ["Steps:", "- install the package", "- build the index", "1. run a query", "A new paragraph starts here"]


def test_a_sentence_may_start_with_code() -> None:
    assert pieces("Run the command. `chatkit ask` answers it.") == ["Run the command.", "`chatkit ask` answers it."]


def test_quotable_sentences_skip_code_tables_headings_and_short_bits() -> None:
    text = ("## How LoRA works\n\nLoRA freezes the weights. It trains two matrices A and B.\n\n"
            "```python\nx = 1\n\ny = 2. Then more code here\n```\n\n"
            "| col | value of it |\n|---|---|\n\n"
            "- Rank r is small, often 8 or 16.\n- **Alpha** scales the update by alpha over r.\n\nToo short.")
    assert split_sentences(text) == ["LoRA freezes the weights.", "It trains two matrices A and B.",
                                     "Rank r is small, often 8 or 16.", "Alpha scales the update by alpha over r."]


def test_soft_wrapped_lines_join_and_word_limits_apply() -> None:
    text = "A sentence that is\nwrapped over two lines ends here. " + "Word " * 70 + "end."
    assert split_sentences(text) == ["A sentence that is wrapped over two lines ends here."]
    assert split_sentences("One two three.", min_words=3) == ["One two three."]
