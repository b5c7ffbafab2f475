from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class GenParams:
    max_new_tokens: int = 200
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.1
    stop: tuple[str, ...] = field(default=())
    seed: int = 0

    @classmethod
    def from_settings(cls, gen: object) -> GenParams:
        return cls(
            max_new_tokens=gen.max_new_tokens,  # type: ignore[attr-defined]
            temperature=gen.temperature,  # type: ignore[attr-defined]
            top_p=gen.top_p,  # type: ignore[attr-defined]
            repetition_penalty=gen.repetition_penalty,  # type: ignore[attr-defined]
            seed=gen.seed,  # type: ignore[attr-defined]
        )
