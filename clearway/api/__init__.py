"""The trading API: Deribit-compatible JSON-RPC 2.0 over HTTP and WebSocket, wallet-bound
API keys (DESIGN.md, ``clearway/api/``).

Start with ``server.ApiServer(node).start()``; the methods are in methods.py, the
mapping of domain rejections to Deribit's error codes in errors.py (one table), naming in
names.py, authentication in auth.py, the read model behind order and trade history and
the order-book stream in readmodel.py, subscriptions in subscriptions.py. ``cli.py``
adds ``--api-port`` and the development mode to ``clearway node``.
"""

from clearway.api.service import Api, ApiConfig, CommandSigning, Settlement

__all__ = ["Api", "ApiConfig", "ApiServer", "CommandSigning", "Settlement", "create_app"]


def __getattr__(name: str):  # the server pulls in Starlette and uvicorn: load on first use
    if name in ("ApiServer", "create_app"):
        from clearway.api import server

        return getattr(server, name)
    raise AttributeError(name)
