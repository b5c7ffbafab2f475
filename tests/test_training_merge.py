"""`adapters export --merged` writes a merged model only when its logits equal the adapter's (fp32)."""

from __future__ import annotations

import json
from pathlib import Path

from chatkit.training.merge import max_logit_diff, sample_ids
from tests.conftest import run_cli
from tests.test_training_registry import make_adapter, one_line_error


def adapter_logits(base_dir: Path, adapter_dir: Path) -> tuple[list, object]:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(base_dir))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32), str(adapter_dir)).eval()
    ids = sample_ids(tokenizer)
    with torch.no_grad():
        return [model(input_ids=torch.tensor([i])).logits[0] for i in ids], ids


def test_merged_export_equals_adapter(tiny_model_dir: Path, tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    path = make_adapter("a", tiny_model_dir, b_std=0.05)
    out = tmp_path / "merged"
    r = run_cli("--set", f"models.dialogue={tiny_model_dir}", "adapters", "export", "a", "--out", str(out), "--merged")
    assert r.returncode == 0, r.stderr
    info = json.loads((out / "chatkit-merged.json").read_text())
    assert info["max_abs_logit_diff"] <= 1e-3
    expected, ids = adapter_logits(tiny_model_dir, path)
    merged = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).eval()
    with torch.no_grad():
        got = [merged(input_ids=torch.tensor([i])).logits[0] for i in ids]
    assert max_logit_diff(expected, got) <= 1e-3
    base = AutoModelForCausalLM.from_pretrained(str(tiny_model_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        plain = [base(input_ids=torch.tensor([i])).logits[0] for i in ids]
    assert max_logit_diff(expected, plain) > 1e-2, "the adapter must change the model, or this test proves nothing"
    one_line_error(run_cli("--set", f"models.dialogue={tiny_model_dir}", "adapters", "export", "a", "--out", str(out), "--merged"),
                   "already exists")


def test_merge_that_changes_logits_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    # B weights this large make W + BA lose precision in fp32: the merged model no longer matches.
    make_adapter("extreme", tiny_model_dir, b_std=1000.0)
    out = tmp_path / "merged"
    r = run_cli("--set", f"models.dialogue={tiny_model_dir}", "adapters", "export", "extreme", "--out", str(out), "--merged")
    one_line_error(r, "merged logits differ from the adapter's")
    assert not out.exists() and not any(p.name.startswith(".tmp-") for p in tmp_path.iterdir())


def test_plain_export_is_a_peft_folder(tiny_model_dir: Path, tmp_path: Path) -> None:
    path = make_adapter("a", tiny_model_dir)
    out = tmp_path / "copy"
    assert run_cli("adapters", "export", "a", "--out", str(out)).returncode == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in path.iterdir())
    expected, _ = adapter_logits(tiny_model_dir, path)
    got, _ = adapter_logits(tiny_model_dir, out)
    assert max_logit_diff(expected, got) == 0.0
