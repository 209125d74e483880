"""One loopback HTTPS port per vault, all served by one small aiohttp application.

A vault's data plane must be at its own origin: the SDK builds and parses ids like
https://<vault host>/certificates/<name>/<version> (no path prefix) and matches the
challenge's resource against the request host. So each `Microsoft.KeyVault/vaults`
resource gets a listening socket on the server's host; the request's local port says
which vault it is for, and `properties.vaultUri` is https://<host>:<port>/. A restart
from a saved state tries the saved port first and rewrites vaultUri when it must move.
"""

from __future__ import annotations

import socket
import ssl
from urllib.parse import urlparse

from aiohttp import web

from azlocal import armids, entra
from azlocal.app import observe
from azlocal.context import Context
from azlocal.store import ArmResource

from . import certificates as _certificates  # noqa: F401 (registers the routes)
from .dataplane import VAULTS, dispatch
from .model import VAULT_TYPE, VaultData


def create_app(ctx: Context) -> web.Application:
    app = web.Application(middlewares=[observe])
    app[entra.CTX] = ctx
    app[VAULTS] = {}
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def vaults(ctx: Context) -> list[ArmResource]:
    return [r for r in ctx.store.resources.values() if r.type.lower() == VAULT_TYPE.lower()]


def _bind(host: str, port: int) -> socket.socket:
    try:
        return socket.create_server((host, port), backlog=128)
    except OSError:
        if port == 0:
            raise
        return socket.create_server((host, 0), backlog=128)


class VaultSites:
    """The vaults' listening sockets, started and stopped with AzLocal."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, ssl_context: ssl.SSLContext) -> None:
        app = create_app(self.ctx)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for vault in vaults(self.ctx):
            previous = urlparse(str(vault.properties.get("vaultUri") or ""))
            same_host = previous.hostname == host
            sock = _bind(host, (previous.port or 0) if same_host else 0)
            port = int(sock.getsockname()[1])
            vault.properties["vaultUri"] = f"https://{host}:{port}/"
            app[VAULTS][port] = armids.norm(vault.id)
            self.ctx.store.vaults.setdefault(armids.norm(vault.id), VaultData())
            await web.SockSite(self._runner, sock, ssl_context=ssl_context).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, name: str) -> str:
        """The vault URI of the vault named `name` (vault names are unique in Azure)."""
        for vault in vaults(self.ctx):
            if vault.name.lower() == name.lower():
                return str(vault.properties["vaultUri"])
        raise KeyError(f"no vault named {name!r}")
