"""Regenerate configs/default.yaml from the code defaults (tests check they agree)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import yaml

from chatkit.config import Settings

HEADER = """# chatkit's default settings. Every key, its default and what it does.
# Copy a section into your own file and pass it with --config FILE, or put it in $CHATKIT_HOME/config.yaml;
# override single keys with --set section.key=value. Unknown keys are errors.
"""


def main() -> None:
    settings = Settings()
    lines = [HEADER]
    for section in dataclasses.fields(settings):
        sub = getattr(settings, section.name)
        lines.append(f"{section.name}:")
        for f in dataclasses.fields(sub):
            lines.append(f"  # {f.metadata['help']}")
            value = yaml.safe_dump({f.name: getattr(sub, f.name)}, default_flow_style=True, width=1000).strip()[1:-1]
            if "\n" in value:  # YAML would fold a string with a newline over lines; JSON is YAML and keeps "\n"
                value = f"{f.name}: {json.dumps(getattr(sub, f.name))}"
            lines.append(f"  {value}")
        lines.append("")
    out = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"
    out.write_text("\n".join(lines))
    assert yaml.safe_load(out.read_text()) == dataclasses.asdict(settings)


if __name__ == "__main__":
    main()
