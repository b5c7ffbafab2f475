from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("doctor", parents=[common], help="check the install, the models and the data dir")
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.add_argument("--skip-models", action="store_true", help="do not load the models (fast)")
    p.set_defaults(func=run)


def run(ctx: Any, args: argparse.Namespace) -> int:
    from chatkit.cli import doctor

    return doctor.run(ctx, args)
