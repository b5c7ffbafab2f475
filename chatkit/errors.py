"""The one error family. The CLI prints `error: <message>` and `hint: <hint>` and exits 1."""

from __future__ import annotations


class ChatkitError(Exception):
    """An expected failure with a message for the user and a hint on how to fix it."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class ConfigError(ChatkitError):
    """A config file, key or value is wrong."""


class ModelError(ChatkitError):
    """A model cannot be found, converted or loaded."""


class CollectionError(ChatkitError):
    """A collection is missing, empty, locked or built with another embedder."""


class InputError(ChatkitError):
    """A user-supplied file, question or argument is unusable."""


class DataError(InputError):
    """A data file (JSONL, training rows, QA items) has bad rows."""


class AdapterError(ChatkitError):
    """An adapter is unknown, corrupt or made for another base model."""
