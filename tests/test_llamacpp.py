"""The llama.cpp backend (issue 11): same tokens and next-token choices as the hf backend for the base model
and an adapter, streaming and its stops, adapter switching, bad GGUFs and adapters as one-line errors.

Skipped without llama-cpp-python (the `llamacpp` extra). The `slow` test measures the packaged model."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("llama_cpp")

from chatkit.config import Paths, Settings  # noqa: E402
from chatkit.errors import AdapterError, InputError, ModelError  # noqa: E402
from chatkit.generation import gguf_write as gw  # noqa: E402
from chatkit.generation.base import GenParams, StreamStats  # noqa: E402
from chatkit.generation.hf import HFGenerator  # noqa: E402
from chatkit.generation.llamacpp import LlamaCppGenerator, top1_agreement  # noqa: E402
from chatkit.generation.loader import load_generator  # noqa: E402
from chatkit.prompting import Passage, PromptTurn, build_messages  # noqa: E402
from chatkit.training.merge import SAMPLE_TURNS, sample_ids  # noqa: E402
from tests.conftest import build_tiny_model  # noqa: E402
from tests.test_training_registry import make_adapter  # noqa: E402

EXTRA_TURNS = [
    [PromptTurn("In 2024, what is 12345 + 678? Answer with digits only, e.g. 13023.", ())],
    [PromptTurn("Explain retrieval-augmented generation.", (Passage("RAG", "Overview", "RAG retrieves passages, then "
                "generates an answer that cites them [1]. Ünïcödé, emoji 🙂 and   spaces."),))],
]


def write_gguf(folder: Path, out: Path, quant: str = "f32") -> Path:
    import torch
    from transformers import AutoModelForCausalLM

    cfg = gw.read_config(folder)
    model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32)
    items = ((k, v.detach().numpy()) for k, v in model.state_dict().items())
    gw.write_model(out, gw.model_tensors(items, cfg), gw.metadata_from_hf(folder, cfg, folder.name), quant)
    return out


@pytest.fixture(scope="session")
def tiny_gguf(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_gguf(tiny_model_dir, tmp_path_factory.mktemp("gguf") / "tiny-f32.gguf")


def open_tiny(tiny_model_dir: Path, gguf: Path, cache: Path, **kw: Any) -> LlamaCppGenerator:
    return LlamaCppGenerator(str(tiny_model_dir), str(gguf), threads=1, cache_dir=cache, **kw)


def hf_logits(model: Any, prompts: list[list[int]]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        return [model(input_ids=torch.tensor([p])).logits[0].float().numpy() for p in prompts]


def rendered_texts(tokenizer: Any) -> list[str]:
    return [tokenizer.apply_chat_template(build_messages(t), tokenize=False, add_generation_prompt=True)
            for t in SAMPLE_TURNS + EXTRA_TURNS]


def test_llama_cpp_tokenizes_rendered_prompts_like_hf(tiny_model_dir: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    gen = open_tiny(tiny_model_dir, tiny_gguf, tmp_path)
    for text in rendered_texts(gen.tokenizer):
        assert gen.llama_tokenize(text) == list(gen.tokenizer(text, add_special_tokens=False)["input_ids"])


@pytest.mark.parametrize("quant", ["f32", "f16"])
def test_next_token_choices_agree_with_hf_base_and_adapter(tiny_model_dir: Path, tmp_path: Path, quant: str) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    gguf = write_gguf(tiny_model_dir, tmp_path / f"tiny-{quant}.gguf", quant)
    gen = open_tiny(tiny_model_dir, gguf, tmp_path / "cache")
    prompts = sample_ids(gen.tokenizer) + [gen.render(build_messages(t)) for t in EXTRA_TURNS]
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    expected = hf_logits(base, prompts)
    agreement, n = top1_agreement([gen.position_logits(p) for p in prompts], expected)
    assert n >= 200 and agreement >= 0.98, (agreement, n)

    path = make_adapter("a", tiny_model_dir, b_std=0.05)
    peft = PeftModel.from_pretrained(base, str(path)).eval()
    with_adapter = hf_logits(peft, prompts)
    assert top1_agreement(expected, with_adapter)[0] < 0.9, "the adapter must change the choices, or this proves nothing"
    gen.load_adapter("a", path)
    assert gen.active_adapter == "a"
    got = [gen.position_logits(p) for p in prompts]
    agreement, n = top1_agreement(got, with_adapter)
    assert agreement >= 0.98, (agreement, n)
    gen.set_adapter(None)
    assert top1_agreement([gen.position_logits(p) for p in prompts], expected)[0] >= 0.98
    gen.set_adapter("a")
    assert all(np.array_equal(x, y) for x, y in zip(got, [gen.position_logits(p) for p in prompts], strict=True))


def test_stream_matches_hf_greedy(tiny_model_dir: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    gen = open_tiny(tiny_model_dir, tiny_gguf, tmp_path)
    hf = HFGenerator(str(tiny_model_dir), dtype="float32")
    params = GenParams(max_new_tokens=24, repetition_penalty=1.1)
    for turns in SAMPLE_TURNS[:2]:
        ids = gen.render(build_messages(turns))
        assert ids == hf.render(build_messages(turns))
        ours, theirs = StreamStats(), StreamStats()
        text = "".join(gen.stream(ids, params, stats=ours))
        assert text == "".join(hf.stream(ids, params, stats=theirs))
        assert (ours.new_tokens, ours.stopped, ours.prompt_tokens) == (theirs.new_tokens, theirs.stopped, theirs.prompt_tokens)
        assert ours.prefill_s > 0 and ours.decode_s > 0
        assert "".join(gen.stream(ids, params)) == text, "a second run (cache reused) gives the same answer"


def test_stream_stops_cancel_and_context(tiny_model_dir: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    ids = open_tiny(tiny_model_dir, tiny_gguf, tmp_path).render(build_messages(SAMPLE_TURNS[1]))
    n_ctx = len(ids) + 24
    gen = open_tiny(tiny_model_dir, tiny_gguf, tmp_path, n_ctx=n_ctx)
    assert gen.max_context == n_ctx
    full = "".join(gen.stream(ids, GenParams(max_new_tokens=12, repetition_penalty=1.0)))
    stop = full.strip()[:3]
    stats = StreamStats()
    cut = "".join(gen.stream(ids, GenParams(max_new_tokens=12, repetition_penalty=1.0, stop=(stop,)), stats=stats))
    assert stats.stopped == "stop" and stop not in cut and full.startswith(cut)
    cancel, stats = threading.Event(), StreamStats()
    cancel.set()
    assert len(list(gen.stream(ids, GenParams(max_new_tokens=12), cancel=cancel, stats=stats))) <= 1
    assert stats.stopped == "cancelled"
    stats = StreamStats()
    list(gen.stream(ids, GenParams(max_new_tokens=500, temperature=0.8, top_p=0.9, seed=3), stats=stats))
    assert stats.stopped in ("length", "eos") and len(ids) + stats.new_tokens <= n_ctx + 1
    long = gen.render(build_messages(SAMPLE_TURNS[2]))
    assert len(long) > n_ctx
    with pytest.raises(InputError, match=f"more than fit the model context of {n_ctx}"):
        list(gen.stream(long, GenParams()))
    assert "".join(gen.stream(ids, GenParams(max_new_tokens=12, repetition_penalty=1.0))) == full


def test_prefix_reuse_is_deterministic(tiny_model_dir: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    """Cached batches are reused only whole, so an answer does not depend on what was asked before."""
    warm = open_tiny(tiny_model_dir, tiny_gguf, tmp_path, n_batch=16)
    first = warm.render(build_messages(SAMPLE_TURNS[2][:1]))
    follow = warm.render(build_messages(SAMPLE_TURNS[2]))
    assert follow[:40] == first[:40]
    params = GenParams(max_new_tokens=16)
    "".join(warm.stream(first, params))
    cold = open_tiny(tiny_model_dir, tiny_gguf, tmp_path, n_batch=16)
    assert "".join(warm.stream(follow, params)) == "".join(cold.stream(follow, params))


def test_answer_nll_matches_hf(tiny_model_dir: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    gen = open_tiny(tiny_model_dir, tiny_gguf, tmp_path)
    hf = HFGenerator(str(tiny_model_dir), dtype="float32")
    prompt = gen.render(build_messages(SAMPLE_TURNS[0]))
    answer = list(gen.tokenizer("LoRA learns two small matrices [1].", add_special_tokens=False)["input_ids"])
    ours, n = gen.answer_nll(prompt, answer)
    theirs, _ = hf.answer_nll(prompt, answer)
    assert n == len(answer) and ours == pytest.approx(theirs, rel=1e-3)


def test_bad_ggufs_are_one_line_and_hf_keeps_working(tiny_model_dir: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    import gguf as gguf_py

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_dir, folder)
    corrupt = folder / "model.gguf"
    corrupt.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\xff" * 64)
    with pytest.raises(ModelError, match="llama.cpp cannot load model.gguf") as info:
        LlamaCppGenerator(str(folder), str(corrupt), threads=1)
    assert "\n" not in str(info.value)

    # A GGUF llama.cpp loads, but of another architecture than the folder's Llama.
    cfg = gw.read_config(folder)
    other = tmp_path / "mistral3.gguf"
    writer = gguf_py.GGUFWriter(str(other), "mistral3")
    for kv in gw.metadata_from_hf(folder, cfg, "x"):
        writer.add_key_value(kv.key.replace("llama.", "mistral3.", 1), kv.value, kv.vtype, kv.sub_type)
    import torch
    from transformers import AutoModelForCausalLM

    state = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).state_dict()
    for name, arr in gw.model_tensors(((k, v.numpy()) for k, v in state.items()), cfg):
        writer.add_tensor(name, arr)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    with pytest.raises(ModelError, match="is a 'mistral3' model") as info:
        LlamaCppGenerator(str(folder), str(other), threads=1)
    assert "\n" not in str(info.value)

    # The Llama GGUF of a different model (another size) in the folder.
    small = build_tiny_model(tmp_path / "small", hidden=128)
    with pytest.raises(ModelError, match="does not match the model folder"):
        LlamaCppGenerator(str(folder), str(write_gguf(small, tmp_path / "small.gguf")), threads=1)

    settings, paths = Settings(), Paths(tmp_path / "home").ensure()
    settings.models.dialogue = str(folder)
    settings.generation.backend = "llamacpp"
    with pytest.raises(ModelError, match="llama.cpp cannot load"):
        load_generator(settings, paths)
    settings.generation.backend = "auto"
    notes: list[str] = []
    fallback = load_generator(settings, paths, notes.append)
    assert isinstance(fallback, HFGenerator) and "llama.cpp unusable" in fallback.backend_note and notes
    assert fallback.generate(fallback.render([{"role": "user", "content": "hi"}]), GenParams(max_new_tokens=3))
    settings.generation.backend = "hf"
    assert isinstance(load_generator(settings, paths), HFGenerator)
    corrupt.unlink()
    shutil.copy(tiny_gguf, folder / "tiny.gguf")
    settings.generation.backend = "auto"
    gen = load_generator(settings, paths)
    assert isinstance(gen, LlamaCppGenerator) and gen.dtype == "F32" and gen.backend_note.startswith("auto:")


def test_adapter_for_another_base_keeps_the_model_working(tiny_model_dir: Path, tiny_gguf: Path, tmp_path: Path) -> None:
    gen = open_tiny(tiny_model_dir, tiny_gguf, tmp_path)
    ids = gen.render(build_messages(SAMPLE_TURNS[0]))
    before = gen.generate(ids, GenParams(max_new_tokens=8))
    small = build_tiny_model(tmp_path / "small", hidden=128)
    with pytest.raises(AdapterError, match="made for another base model") as info:
        gen.load_adapter("small", make_adapter("small", small))
    assert "\n" not in str(info.value) and gen.active_adapter is None and "small" not in gen.adapters
    assert gen.generate(ids, GenParams(max_new_tokens=8)) == before


@pytest.mark.slow
def test_packaged_model_agreement(real_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The packaged SmolLM2 on llama.cpp vs transformers fp32: tokens, base and adapter next-token choices."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from chatkit.models import packaged_gguf_path, resolve_dialogue
    from chatkit.training.merge import export_gguf

    paths = Paths(real_home).ensure()
    folder = resolve_dialogue(Settings(), paths).path
    gen = LlamaCppGenerator(folder, str(packaged_gguf_path()), cache_dir=tmp_path)
    for text in rendered_texts(gen.tokenizer):
        assert gen.llama_tokenize(text) == list(gen.tokenizer(text, add_special_tokens=False)["input_ids"])
    prompts = sample_ids(gen.tokenizer)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    base_ref = hf_logits(model, prompts)
    base, n = top1_agreement([gen.position_logits(p) for p in prompts], base_ref)

    torch.manual_seed(0)  # A is initialised randomly by peft, B here
    peft = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules=list(gw.LORA_TARGETS), task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, p in peft.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.03)
    adapter_dir = tmp_path / "random-b"
    peft.save_pretrained(str(adapter_dir))
    peft.eval()
    adapter_ref = hf_logits(peft, prompts)
    changed = 1 - top1_agreement(base_ref, adapter_ref)[0]
    gen.load_adapter("random-b", adapter_dir)
    adapter, _ = top1_agreement([gen.position_logits(p) for p in prompts], adapter_ref)
    gen.close()
    f16 = export_gguf(folder, adapter_dir, tmp_path / "merged-f16.gguf", "f16")["top1_agreement"]
    q8 = export_gguf(folder, adapter_dir, tmp_path / "merged-q8_0.gguf", "q8_0")["top1_agreement"]
    with capsys.disabled():
        print(f"\nllama.cpp vs transformers fp32, top-1 over {n} positions: packaged Q4_1 base {base:.3f}; "
              f"Q4_1 base + random-B LoRA (changes {changed:.0%} of choices) {adapter:.3f}; "
              f"merged export f16 {f16:.3f}, q8_0 {q8:.3f}")
    assert n >= 200 and changed > 0.05
    assert base >= 0.95 and adapter >= 0.95  # Q4_1 weights run with 8-bit activations in llama.cpp
    assert f16 >= 0.98 and q8 >= 0.93
