"""Assistant-only labels, proven token by token on real templates (ChatML and two without
`{% generation %}` markers), for single-turn, multi-turn and RAG conversations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chatkit.errors import DataError
from chatkit.prompting import Passage, PromptTurn, build_messages
from chatkit.training.masking import IGNORE, encode, end_of_turn

ZEPHYR = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + eos_token + '\n' }}"
    "{% elif message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + eos_token + '\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + eos_token + '\n' }}{% endif %}"
    "{% if loop.last and add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}{% endfor %}"
)
# Llama-2 style: the system prompt lives inside the first user turn; the answer follows '[/INST]' after a space.
LLAMA2 = (
    "{% if messages[0]['role'] == 'system' %}{% set system = messages[0]['content'] %}{% set loop_messages = messages[1:] %}"
    "{% else %}{% set system = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}{% if message['role'] == 'user' %}"
    "{% if loop.first and system %}{{ bos_token + '[INST] <<SYS>>\n' + system + '\n<</SYS>>\n\n' + message['content'] + ' [/INST]' }}"
    "{% else %}{{ bos_token + '[INST] ' + message['content'] + ' [/INST]' }}{% endif %}"
    "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token }}{% endif %}{% endfor %}"
)
NOT_PREFIX_STABLE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}"
    "{% if loop.last %}{{ ' (latest)' }}{% endif %}{{ '<|im_end|>\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

LORA = Passage("LoRA", "Idea", "LoRA freezes the pre-trained weights and learns two small low-rank matrices.")
FAISS = Passage("FAISS", "", "FAISS stores dense vectors and finds nearest neighbours quickly.")
CONVERSATIONS = {
    "single": [{"role": "user", "content": "What is LoRA?"}, {"role": "assistant", "content": "Low-rank adapters."}],
    "multi": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "What is LoRA?"}, {"role": "assistant", "content": "Two small matrices."},
        {"role": "user", "content": "And QLoRA?"}, {"role": "assistant", "content": "LoRA on a 4-bit base."},
        {"role": "user", "content": "Perplexity?"}, {"role": "assistant", "content": "exp of the mean loss."},
    ],
    "rag": build_messages([
        PromptTurn("What is LoRA?", (LORA, FAISS), "LoRA learns two low-rank matrices [1]."),
        PromptTurn("What does FAISS do?", (FAISS,), "It finds nearest neighbours [1]."),
    ]),
}


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_dir))


def expected_trained(tokenizer: Any, messages: list[dict[str, str]], text: str, offsets: Any) -> list[bool]:
    """Independently of the masker: a token is trained iff it starts between the end of the generation
    prompt the model would be given and the end of the end-of-turn token after that answer's content."""
    eot = "<|im_end|>"
    trained = [False] * len(offsets)
    pos = 0
    for i, m in enumerate(messages):
        start = text.index(m["content"], pos)
        end = start + len(m["content"])
        pos = end
        if m["role"] != "assistant":
            continue
        prompt = tokenizer.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        assert text.startswith(prompt) and text[len(prompt):start].strip() == "", "only layout between the prompt and the answer"
        stop = text.index(eot, end) + len(eot)
        assert text[end:stop].strip() == eot, "only whitespace between the answer and its end-of-turn token"
        for t, (a, _b) in enumerate(offsets):
            if len(prompt) <= a < stop:
                trained[t] = True
    return trained


@pytest.mark.parametrize("template", ["chatml", "zephyr", "llama2"])
@pytest.mark.parametrize("name", list(CONVERSATIONS))
def test_labels_are_exactly_the_assistant_tokens(tokenizer: Any, template: str, name: str) -> None:
    saved = tokenizer.chat_template
    tokenizer.chat_template = {"chatml": saved, "zephyr": ZEPHYR, "llama2": LLAMA2}[template]
    try:
        messages = CONVERSATIONS[name]
        enc = encode(tokenizer, messages)
        want = expected_trained(tokenizer, messages, enc.text, enc.offsets)
        for i, (tid, label) in enumerate(zip(enc.input_ids, enc.labels, strict=True)):
            piece = enc.text[enc.offsets[i][0]:enc.offsets[i][1]]
            if want[i]:
                assert label == tid, f"assistant token {i} {piece!r} not trained"
            else:
                assert label == IGNORE, f"context token {i} {piece!r} trained"
        # Every assistant answer is trained in full, and each ends with the end-of-turn token.
        eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
        n_answers = sum(m["role"] == "assistant" for m in messages)
        trained_eos = [i for i, (tid, lab) in enumerate(zip(enc.input_ids, enc.labels, strict=True)) if tid == eos and lab == eos]
        assert len(trained_eos) == n_answers
        decoded = tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels, strict=True) if lab != IGNORE])
        for m in messages:
            if m["role"] == "assistant":
                assert m["content"] in decoded
        # Passage and question text never leaks into the trained tokens.
        for m in messages:
            if m["role"] in ("user", "system"):
                assert m["content"] not in decoded
    finally:
        tokenizer.chat_template = saved


def test_token_ids_match_plain_tokenization_of_the_rendered_text(tokenizer: Any) -> None:
    messages = CONVERSATIONS["rag"]
    enc = encode(tokenizer, messages)
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    assert enc.input_ids == tokenizer(text, add_special_tokens=False)["input_ids"]


def test_end_of_turn_is_found(tokenizer: Any) -> None:
    assert end_of_turn(tokenizer) == "<|im_end|>"


def test_template_that_rewrites_earlier_turns_is_refused(tokenizer: Any) -> None:
    saved = tokenizer.chat_template
    tokenizer.chat_template = NOT_PREFIX_STABLE
    try:
        with pytest.raises(DataError, match="renders earlier turns differently"):
            encode(tokenizer, CONVERSATIONS["multi"])
    finally:
        tokenizer.chat_template = saved


@pytest.mark.slow
def test_labels_on_the_real_smollm2_template(real_home: Path) -> None:
    from transformers import AutoTokenizer

    from chatkit.config import Paths, Settings
    from chatkit.models import resolve_dialogue

    tokenizer = AutoTokenizer.from_pretrained(resolve_dialogue(Settings(), Paths(real_home).ensure()).path)
    for messages in CONVERSATIONS.values():
        enc = encode(tokenizer, messages)
        want = expected_trained(tokenizer, messages, enc.text, enc.offsets)
        assert [lab != IGNORE for lab in enc.labels] == want
        assert all(lab in (IGNORE, tid) for tid, lab in zip(enc.input_ids, enc.labels, strict=True))
