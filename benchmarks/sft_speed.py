"""Training tokens/s and peak RSS of `chatkit train sft` vs raw TRL SFTTrainer, in one run.

Both train the packaged SmolLM2-135M-Instruct with the same LoRA (chatkit's training config) for the
same number of optimizer steps on corpora/conversations/train.jsonl. The raw run uses SFTTrainer's
defaults (batch 8, gradient checkpointing on, loss on every token of the `messages` rows) except
bf16=False, since bf16 on a CPU without bf16 instructions is many times slower. Tokens/s counts the
non-padding input tokens of each step; each run is a separate process so peak RSS is its own.

Goal: chatkit >= 1.5x the raw tokens/s, chatkit peak RSS <= 3 GB.

    python benchmarks/sft_speed.py [--steps 8] [--home DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "corpora" / "conversations" / "train.jsonl"


# Runs the command and reports its peak RSS: RUSAGE_CHILDREN of a fresh parent covers that one child only.
_WRAPPER = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print('peak_rss_kb', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(r.returncode)")


def measured(cmd: list[str], env: dict[str, str]) -> tuple[str, float, float]:
    """(stdout, wall seconds, peak RSS in GB) of one child process."""
    start = time.perf_counter()
    r = subprocess.run([sys.executable, "-c", _WRAPPER, *cmd], capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    rss_kb = int(r.stderr.strip().splitlines()[-1].split()[-1])
    return r.stdout, time.perf_counter() - start, rss_kb / 1e6


def raw_trl(model: str, data: str, steps: int) -> None:
    """The baseline, run in its own process: SFTTrainer defaults, bf16 off, the same LoRA."""
    import dataclasses

    from datasets import load_dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    from chatkit.config import TrainingConfig

    cfg = TrainingConfig()
    rows = load_dataset("json", data_files=data, split="train").select_columns(["messages"])
    out = tempfile.mkdtemp()
    args = SFTConfig(output_dir=out, bf16=False, max_steps=steps, use_cpu=True, report_to="none", disable_tqdm=True,
                     save_strategy="no", include_num_input_tokens_seen="non_padding", max_length=cfg.max_length)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=list(cfg.target_modules), task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(model), args=args, train_dataset=rows,
                         processing_class=AutoTokenizer.from_pretrained(model), peft_config=lora)
    result = trainer.train()
    runtime = float(result.metrics["train_runtime"])
    print(json.dumps({"tokens_per_s": trainer.state.num_input_tokens_seen / runtime, "steps": trainer.state.global_step,
                      "batch": args.per_device_train_batch_size, "grad_ckpt": bool(args.gradient_checkpointing),
                      "lora": dataclasses.asdict(cfg)["lora_r"]}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--home", default=str(ROOT / ".test-home"), help="data dir holding the converted model")
    parser.add_argument("--raw", nargs=3, metavar=("MODEL", "DATA", "STEPS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.raw:
        raw_trl(args.raw[0], args.raw[1], int(args.raw[2]))
        return

    from chatkit.config import Paths, Settings
    from chatkit.models import resolve_dialogue

    model = resolve_dialogue(Settings(), Paths(Path(args.home)).ensure(), print).path
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        out, ck_wall, ck_rss = measured([sys.executable, "-m", "chatkit", "--home", str(home), "--set", f"models.dialogue={model}",
                                         "--set", "training.val_fraction=0", "train", "sft", "--data", str(DATA),
                                         "--name", "bench", "--max-steps", str(args.steps), "--json"], env)
        ours = json.loads(out)["metrics"]
        meta = json.loads((home / "adapters" / "bench" / "chatkit-adapter.json").read_text())
    out, raw_wall, raw_rss = measured([sys.executable, __file__, "--raw", model, str(DATA), str(args.steps)], env)
    raw = json.loads(out.strip().splitlines()[-1])
    print(f"data: {DATA.relative_to(ROOT)}, model: SmolLM2-135M-Instruct, {args.steps} optimizer steps each, LoRA r={meta['config']['lora_r']}")
    print(f"chatkit train sft: {ours['tokens_per_s']:.0f} tokens/s, peak RSS {ck_rss:.2f} GB, process {ck_wall:.0f} s "
          f"(batch {meta['config']['batch_size']}, {meta['precision']}, grad checkpointing {meta['config']['gradient_checkpointing']})")
    print(f"raw TRL SFTTrainer: {raw['tokens_per_s']:.0f} tokens/s, peak RSS {raw_rss:.2f} GB, process {raw_wall:.0f} s "
          f"(batch {raw['batch']}, fp32, grad checkpointing {raw['grad_ckpt']})")
    print(f"tokens/s ratio: {ours['tokens_per_s'] / raw['tokens_per_s']:.2f} (goal >= 1.5); "
          f"chatkit peak RSS {ck_rss:.2f} GB (goal <= 3)")


if __name__ == "__main__":
    main()
