from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from chatkit.config import Settings, all_keys, load_settings, set_key, to_dict
from chatkit.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_have_help_for_every_key() -> None:
    keys = all_keys()
    assert "retrieval.k" in keys and "models.dialogue" in keys
    assert all(help_text for _, help_text in keys.values())


def test_default_yaml_matches_the_code_defaults() -> None:
    data = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text())
    assert data == to_dict(Settings())


def test_yaml_file_then_overrides_win(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retrieval:\n  k: 9\n  mode: bm25\ngeneration:\n  temperature: 0.5\n")
    s = load_settings([cfg], ["retrieval.k=3", "engine.collections=a,b", "models.allow_online=true"])
    assert s.retrieval.k == 3 and s.retrieval.mode == "bm25"
    assert s.generation.temperature == 0.5
    assert s.engine.collections == ["a", "b"]
    assert s.models.allow_online is True


def test_home_config_is_read(tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("retrieval:\n  k: 7\n")
    assert load_settings(home=tmp_path).retrieval.k == 7


@pytest.mark.parametrize(
    ("override", "suggestion"),
    [("retrieval.kk=1", "retrieval.k"), ("generation.max_new_token=5", "generation.max_new_tokens"), ("nope=1", "'")],
)
def test_unknown_key_names_the_nearest(override: str, suggestion: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(overrides=[override])
    assert "unknown config key" in err.value.message
    assert "did you mean" in err.value.hint and suggestion in err.value.hint


def test_unknown_section_in_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("retreival:\n  k: 2\n")
    with pytest.raises(ConfigError) as err:
        load_settings([cfg])
    assert "retrieval" in err.value.hint


@pytest.mark.parametrize("override", ["retrieval.k=abc", "models.allow_online=maybe", "retrieval.k=1.5", "retrieval.mode=fuzzy"])
def test_mistyped_values_are_refused(override: str) -> None:
    with pytest.raises(ConfigError):
        load_settings(overrides=[override])


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("retrieval: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings([bad])
    with pytest.raises(ConfigError, match="not found"):
        load_settings([tmp_path / "missing.yaml"])


def test_set_key_coerces_types() -> None:
    s = Settings()
    set_key(s, "generation.temperature", 1)
    assert isinstance(s.generation.temperature, float)
    with pytest.raises(ConfigError):
        set_key(s, "retrieval.k", True)


def test_override_without_equals() -> None:
    with pytest.raises(ConfigError, match="key=value"):
        load_settings(overrides=["retrieval.k"])


def test_word_valued_keys_read_an_unquoted_boolean_as_the_word(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("training:\n  bf16: true\n  gradient_checkpointing: false\n")
    s = load_settings([cfg], ["training.quantization=none"])
    assert (s.training.bf16, s.training.gradient_checkpointing) == ("true", "false")
    assert load_settings(overrides=["training.bf16=false"]).training.bf16 == "false"
    with pytest.raises(ConfigError, match="one of"):
        load_settings(overrides=["training.bf16=maybe"])
