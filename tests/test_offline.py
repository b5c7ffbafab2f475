from __future__ import annotations

import socket

import pytest


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError("network blocked by test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)


def test_network_is_really_blocked(no_network: None) -> None:
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", 9), timeout=1):
        pass


@pytest.mark.slow
def test_doctor_passes_with_sockets_blocked(no_network: None, real_home, capsys: pytest.CaptureFixture[str]) -> None:
    from chatkit.cli import main

    with pytest.raises(SystemExit) as code:
        main(["--home", str(real_home), "doctor", "--json"])
    out = capsys.readouterr().out
    assert code.value.code == 0, out
    assert '"offline mode"' in out
