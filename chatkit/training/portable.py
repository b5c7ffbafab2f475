"""Adapter files that name no machine path: PEFT records the base model's folder in `adapter_config.json`,
which means nothing on another machine. chatkit loads adapters onto the base model it already holds
(the registry checks the weights' fingerprint), so the field only documents the base: its model id."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chatkit.training.registry import PEFT_CONFIG


def write_portable_base_name(folder: Path, base_model_id: str) -> None:
    """Replace PEFT's `base_model_name_or_path` (a local folder at save time) by the base's model id."""
    config_file = folder / PEFT_CONFIG
    config = json.loads(config_file.read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_model_id
    config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def portable_metadata(meta: dict[str, Any]) -> dict[str, Any]:
    """chatkit-adapter.json as it ships: no base folder, data files by name (their sha256 identifies them)."""
    shipped = {k: v for k, v in meta.items() if k != "base_path"}
    data = {split: ({**info, "path": Path(str(info["path"])).name} if isinstance(info, dict) and "path" in info else info)
            for split, info in (meta.get("data") or {}).items()}
    if data:
        shipped["data"] = data
    return shipped
