"""`chatkit serve`: the OpenAI-compatible HTTP API."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from chatkit.cli import argtypes

if TYPE_CHECKING:
    from chatkit.cli.context import Context, Subparsers


def register(sub: Subparsers, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("serve", parents=[common], help="OpenAI-compatible HTTP API",
                       description="Serve /v1/chat/completions (with retrieval and sources), /v1/models, /v1/embeddings, "
                                   "/v1/search, /v1/feedback, /health and /metrics. Loopback only unless an API key is set.")
    p.add_argument("--host", metavar="ADDR", help="address to bind (default: server.host, 127.0.0.1); "
                                                  "anything but loopback needs --api-key")
    p.add_argument("--port", type=argtypes.port, metavar="N", help="port (default: server.port, 8000)")
    p.add_argument("--api-key", metavar="KEY", help="require 'Authorization: Bearer KEY' (default: server.api_key)")
    p.add_argument("--collection", action="append", metavar="NAME", help="collection to search (repeatable; default: engine.collections)")
    p.add_argument("--adapter", metavar="NAME", help="adapter the 'chatkit' model answers with, or 'base' (default: engine.adapter)")
    p.set_defaults(func=run)


def run(ctx: Context, args: argparse.Namespace) -> int:
    from chatkit.config import validate
    from chatkit.server.run import serve

    settings = ctx.settings
    for name in ("host", "port", "api_key"):
        value = getattr(args, name)
        if value is not None:
            setattr(settings.server, name, value)
    validate(settings)
    return serve(settings, ctx.paths, args.collection, args.adapter, say=ctx.say)
