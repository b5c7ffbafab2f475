"""The one decode loop (chatkit/generation/base.py) on the hf backend, with tiny real Llamas.

`chain_model` is a Llama whose weights are set by hand so that greedy decoding spells a known answer
(multibyte characters, a runaway "\\nQuestion:" and an end-of-turn token): every outcome of the loop
has an exact expected text. The random tiny model checks the loop against transformers' own greedy search.
"""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

import pytest

from chatkit.config import Settings
from chatkit.generation.base import GenParams, StreamStats
from chatkit.generation.hf import HFGenerator
from chatkit.prompting import PromptTurn, build_messages

ANSWER = "é🙂 [1].\nQuestion: x?"  # every token distinct, so a bigram chain can spell it
START = "Q"  # the one-token prompt the chain starts from
GREEDY = GenParams(max_new_tokens=40, repetition_penalty=1.0, stop=())


@pytest.fixture(scope="module")
def chain_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny Llama made a bigram model: attention and MLP outputs are zeroed, so the last hidden state is the
    current token's embedding, and the (untied) output rows map each token of START + ANSWER to the next one,
    the last to <|im_end|>."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_model_dir))
    chain = tok(START + ANSWER, add_special_tokens=False)["input_ids"] + [tok.convert_tokens_to_ids("<|im_end|>")]
    assert len(set(chain)) == len(chain) and tok.convert_ids_to_tokens(chain[0]) == START
    model = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32)
    model.config.tie_word_embeddings = False
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        embed = model.model.embed_tokens.weight
        head = torch.zeros_like(embed)
        for current, following in zip(chain, chain[1:], strict=False):
            head[following] = 10 * embed[current] / embed[current].norm()
        model.lm_head.weight = torch.nn.Parameter(head)
    out = tmp_path_factory.mktemp("chain-llama")
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def chain(chain_model_dir: Path) -> HFGenerator:
    return HFGenerator(str(chain_model_dir), "float32")


def start_ids(gen: HFGenerator) -> list[int]:
    return list(gen.tokenizer(START, add_special_tokens=False)["input_ids"])


def pieces_of(gen: HFGenerator, params: GenParams) -> tuple[list[str], StreamStats]:
    stats = StreamStats()
    return list(gen.stream(start_ids(gen), params, stats=stats)), stats


def test_the_answer_ends_at_eos_with_multibyte_characters_whole(chain: HFGenerator) -> None:
    pieces, stats = pieces_of(chain, GREEDY)
    assert "".join(pieces) == ANSWER
    assert stats.stopped == "eos" and stats.prompt_tokens == 1
    assert stats.new_tokens == len(chain.tokenizer(ANSWER, add_special_tokens=False)["input_ids"]) + 1
    # é is two tokens and 🙂 four: each arrives as one piece, never as a replacement character.
    assert pieces[:2] == ["é", "🙂"] and not any("\ufffd" in p for p in pieces)
    assert stats.prefill_s > 0 and stats.decode_s > 0


def test_the_default_stop_strings_cut_a_runaway_question(chain: HFGenerator) -> None:
    stats = StreamStats()
    params = GenParams.from_settings(Settings().generation)
    assert "\nQuestion:" in params.stop
    text = "".join(chain.stream(start_ids(chain), dataclasses.replace(params, repetition_penalty=1.0), stats=stats))
    assert text == "é🙂 [1]." and stats.stopped == "stop"


def test_a_stop_string_spanning_pieces_is_cut_where_it_starts(chain: HFGenerator) -> None:
    pieces, _ = pieces_of(chain, GREEDY)
    assert pieces[2:6] == [" [", "1", "]", "."]
    stop = "[1]"  # begins inside the piece " [" and ends two pieces later
    shown, stats = pieces_of(chain, GenParams(max_new_tokens=40, repetition_penalty=1.0, stop=("never", stop)))
    assert "".join(shown) == "é🙂 " and stats.stopped == "stop"
    assert stats.new_tokens == 2 + 4 + 3  # é, 🙂, then " [", "1", "]" before the stop was seen


def test_max_new_tokens_ends_with_length(chain: HFGenerator) -> None:
    pieces, stats = pieces_of(chain, GenParams(max_new_tokens=7, repetition_penalty=1.0, stop=()))
    assert "".join(pieces) == "é🙂 [" and stats.stopped == "length" and stats.new_tokens == 7
    # Half a character at the limit is held back, not shown broken.
    pieces, stats = pieces_of(chain, GenParams(max_new_tokens=3, repetition_penalty=1.0, stop=()))
    assert pieces == ["é"] and stats.stopped == "length"


def test_cancel_mid_stream_keeps_the_text_so_far(chain: HFGenerator) -> None:
    cancel = threading.Event()
    stats = StreamStats()
    got: list[str] = []
    for piece in chain.stream(start_ids(chain), GREEDY, cancel=cancel, stats=stats):
        got.append(piece)
        if len(got) == 3:
            cancel.set()
    assert got == ["é", "🙂", " ["] and stats.stopped == "cancelled" and stats.new_tokens == 7


def test_the_context_limit_ends_with_length_and_an_over_long_prompt_is_refused(chain: HFGenerator,
                                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from chatkit.errors import InputError

    monkeypatch.setattr(chain.model.config, "max_position_embeddings", 5)
    pieces, stats = pieces_of(chain, GREEDY)
    # After five tokens the context is full: é and the first three bytes of 🙂, which are held back.
    assert pieces == ["é"] and stats.stopped == "length" and stats.new_tokens == 5
    with pytest.raises(InputError, match="more than fit the model context of 5"):
        list(chain.stream(start_ids(chain) * 5, GREEDY))


def test_token_bytes_rebuild_the_tokenizers_own_decoding(chain: HFGenerator) -> None:
    tok = chain.tokenizer
    text = "Ünïcödé 🙂, emoji and   spaces\n\tQuestion: [1]"
    ids = [tok.convert_tokens_to_ids("<|im_start|>"), *tok(text, add_special_tokens=False)["input_ids"]]
    assert b"".join(chain.token_bytes(t) for t in ids).decode("utf-8") == tok.decode(ids, skip_special_tokens=True) == text


def transformers_greedy(model_dir: Path, ids: list[int], eos: list[int], max_new_tokens: int) -> tuple[str, int]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32).eval()
    with torch.inference_mode():
        out = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=max_new_tokens, do_sample=False, repetition_penalty=1.0,
                             eos_token_id=eos, pad_token_id=eos[0])
    new = [int(t) for t in out[0, len(ids):]]
    return tok.decode([t for t in new if t not in eos], skip_special_tokens=True), len(new)


@pytest.mark.parametrize("question", ["What is LoRA?", "Explain BM25 and FAISS in one sentence."])
def test_greedy_output_equals_transformers_generate(tiny_model_dir: Path, question: str) -> None:
    gen = HFGenerator(str(tiny_model_dir), "float32")
    ids = gen.render(build_messages([PromptTurn(question)]))
    stats = StreamStats()
    ours = "".join(gen.stream(ids, GenParams(max_new_tokens=32, repetition_penalty=1.0, stop=()), stats=stats))
    theirs, n_new = transformers_greedy(tiny_model_dir, ids, sorted(gen.eos_ids), 32)
    assert ours == theirs and stats.new_tokens == n_new
    assert len(ours) > 10, "a longer answer, or this compares little"


def test_greedy_output_equals_transformers_generate_on_the_chain(chain: HFGenerator, chain_model_dir: Path) -> None:
    theirs, n_new = transformers_greedy(chain_model_dir, start_ids(chain), sorted(chain.eos_ids), 40)
    pieces, stats = pieces_of(chain, GREEDY)
    assert "".join(pieces) == theirs == ANSWER and stats.new_tokens == n_new


def test_copy_bias_makes_the_answer_use_only_the_prompts_tokens(tiny_model_dir: Path) -> None:
    gen = HFGenerator(str(tiny_model_dir), "float32")
    ids = gen.render(build_messages([PromptTurn("What is LoRA?")]))

    def answer_ids(bias: float) -> list[int]:
        text = gen.generate(ids, GenParams(max_new_tokens=24, repetition_penalty=1.0, stop=(), copy_bias=bias))
        return list(gen.tokenizer(text, add_special_tokens=False)["input_ids"])

    assert set(answer_ids(0.0)) - set(ids), "the tiny model's own answer must leave the prompt, or this shows nothing"
    assert answer_ids(1e4) and set(answer_ids(1e4)) <= set(ids)
