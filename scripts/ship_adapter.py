"""Copy a registry adapter into chatkit/adapters/NAME as the shipped adapter: bf16 weights, its training log,
and the comparison against the base model that decides whether it becomes the default on install. No machine
path travels: the PEFT config names the base by model id, the metadata names data files by name.

    python scripts/ship_adapter.py NAME [--home DIR]

Run `chatkit eval compare --qa corpora/qa/dev.jsonl --adapter NAME` first: its verdict.json is copied into
the metadata's "shipped" field. See scripts/train_tutor.sh for the whole recipe.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    from safetensors.torch import load_file, save_file

    from chatkit.config import Paths, default_home
    from chatkit.training import registry
    from chatkit.training.portable import portable_metadata, write_portable_base_name

    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("--home", default=None)
    args = parser.parse_args()
    paths = Paths(Path(args.home) if args.home else default_home())
    info = registry.get_adapter(paths, args.name)
    verdict_file = paths.reports / f"compare-{args.name}" / "verdict.json"
    if not verdict_file.is_file():
        sys.exit(f"{verdict_file} is missing: run `chatkit eval compare --qa corpora/qa/dev.jsonl --adapter {args.name}` first")
    verdict = json.loads(verdict_file.read_text())
    out = ROOT / "chatkit" / "adapters" / args.name
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    tensors = {k: v.bfloat16().contiguous() for k, v in load_file(str(info.path / registry.WEIGHTS)).items()}
    save_file(tensors, str(out / registry.WEIGHTS), metadata={"format": "pt"})
    shutil.copy2(info.path / registry.PEFT_CONFIG, out / registry.PEFT_CONFIG)
    write_portable_base_name(out, str(info.meta["base_model"]))
    shutil.copy2(info.path / "training-log.json", out / "training-log.json")
    meta = portable_metadata(info.meta)
    meta["precision_shipped"] = "bf16"
    meta["shipped"] = verdict
    (out / registry.META).write_text(json.dumps(meta, indent=2) + "\n")
    size = (out / registry.WEIGHTS).stat().st_size
    print(f"shipped {args.name} -> {out.relative_to(ROOT)} ({size / 2**20:.1f} MB bf16); better than base: {verdict.get('better')}")


if __name__ == "__main__":
    main()
