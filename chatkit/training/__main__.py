"""`python -m chatkit.training sft ...`, the entry point for multi-GPU runs:

    accelerate launch --config_file configs/accelerate/ddp.yaml -m chatkit.training sft \\
        --data train.jsonl --config configs/qlora-gpu.yaml --name tutor-gpu

Every process prepares the data and trains its shard; only the main one writes the adapter.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chatkit.training", description="chatkit fine-tuning (for accelerate launch)")
    sub = parser.add_subparsers(dest="verb", required=True)
    sft = sub.add_parser("sft", help="TRL SFT + LoRA into a new adapter, like `chatkit train sft`")
    sft.add_argument("--data", required=True, metavar="FILE")
    sft.add_argument("--val", metavar="FILE")
    sft.add_argument("--name", metavar="NAME")
    sft.add_argument("--resume", action="store_true")
    sft.add_argument("--max-steps", type=int, metavar="N")
    sft.add_argument("--home", metavar="DIR", help="data dir (default: $CHATKIT_HOME or ~/.local/share/chatkit)")
    sft.add_argument("--config", action="append", default=[], metavar="FILE", help="YAML config file (repeatable)")
    sft.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    from chatkit.config import Paths, apply_offline, default_home, load_settings
    from chatkit.errors import ChatkitError

    args = parse(argv)
    err = Console(stderr=True)
    try:
        home = Path(args.home).expanduser() if args.home else default_home()
        settings = load_settings([Path(p) for p in args.config], args.overrides, home=home)
        apply_offline(settings)
        from chatkit.training.sft import SftRequest, run_sft

        req = SftRequest(Path(args.data), Path(args.val) if args.val else None, args.name, args.resume, args.max_steps)
        result = run_sft(settings, Paths(home).ensure(), req, err, lambda msg: err.print(msg, highlight=False))
    except ChatkitError as exc:
        hint = f" (hint: {exc.hint})" if exc.hint else ""
        print(f"error: {exc.message}{hint}", file=sys.stderr)
        return exc.exit_code
    if result.interrupted:
        err.print(f"interrupted: checkpoint {result.checkpoint}; rerun with --name {result.name} --resume")
        return 130
    if result.path is not None:
        print(json.dumps({"name": result.name, "path": str(result.path), "metrics": result.metrics}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
