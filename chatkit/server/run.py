"""`chatkit serve`: check the address is safe to bind, load the engine once, run uvicorn."""

from __future__ import annotations

import socket
from collections.abc import Callable, Sequence
from typing import Any

from chatkit.config import Paths, Settings
from chatkit.errors import ChatkitError, ConfigError
from chatkit.server.limits import check_bind


def check_port_free(host: str, port: int) -> None:
    """Fail in a second, before the model loads, when the address is taken or not ours to bind."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ConfigError(f"cannot resolve host '{host}': {exc.strerror}", "use an IP address such as 127.0.0.1") from None
    family, kind, proto, _, addr = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError as exc:
            raise ChatkitError(f"cannot listen on {host}:{port}: {exc.strerror}",
                               "choose another --port (or server.port), or stop what is using it") from None


def serve(settings: Settings, paths: Paths, collections: Sequence[str] | None = None, adapter: str | None = None,
          say: Callable[[str], None] = print) -> int:
    srv = settings.server
    check_bind(srv.host, srv.api_key)
    try:
        import uvicorn

        from chatkit.server.app import create_app
    except ImportError as exc:
        raise ChatkitError(f"chatkit serve needs the server extra ({exc.name} is not installed)",
                           "pip install -e '.[server]'") from None
    check_port_free(srv.host, srv.port)
    from chatkit.assembly import build_engine
    from chatkit.conversations import ConversationStore

    engine = build_engine(settings, paths, collections, progress=say)
    if adapter is not None:
        engine.use_adapter(adapter)
    store = ConversationStore(paths.conversations_db)
    names = list(collections or settings.engine.collections)
    for skipped in getattr(engine.searcher, "skipped", ()):
        say(f"warning: {skipped.message}; serving without it (restart once it has documents)")
        names.remove(skipped.name)
    # Loaded before the app: loading installs and promotes shipped adapters, which the server's default follows.
    model_id = engine.generator.model_id
    app = create_app(engine, store, paths, collections=names)
    where = f"http://{srv.host if ':' not in srv.host else f'[{srv.host}]'}:{srv.port}"
    say(f"serving {model_id} (adapter: {engine.adapter_name}) on {where}/v1 "
        f"- collections {', '.join(names)}; {'API key required' if srv.api_key else 'no API key (loopback only)'}; ctrl-c stops")
    config: Any = uvicorn.Config(app, host=srv.host, port=srv.port, log_level="warning", access_log=False,
                                 timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run()
    finally:
        store.close()
    return 0
