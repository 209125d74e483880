"""Run azlocal: in a background thread (tests, demo) or in the foreground (`azlocal serve`)."""

from __future__ import annotations

import asyncio
import json
import secrets
import ssl
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from aiohttp import web

from .app import create_app
from .context import Context
from .keyvault.sites import VaultSites, vaults
from .pki import LOOPBACK_NAMES, CertificateAuthority
from .seed import DEFAULT_SEED, IssuedCredentials, load
from .store import Store
from .tokens import OidcVerifier, TokenIssuer

ADMIN_HEADER = "X-Azlocal-Admin-Key"


def credentials_file(state_file: Path) -> Path:
    return state_file.with_name(state_file.name + ".credentials.json")


class AzLocal:
    """One azlocal server. `start()` returns once it accepts HTTPS connections."""

    def __init__(
        self,
        state_dir: Path,
        *,
        seed: Path = DEFAULT_SEED,
        state_file: Path | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        settings: dict[str, Any] | None = None,
        trust_ca: list[Path] | None = None,
    ) -> None:
        self.state_dir = state_dir.resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.host, self.port = host, port
        self.ca_file = self.state_dir / "ca.pem"
        self.credentials_dir = self.state_dir / "credentials"
        now = time.time()
        if state_file is not None and state_file.exists():
            store = Store.load(state_file)
            self.issued = IssuedCredentials.load(credentials_file(state_file))
        else:
            store, self.issued = load(seed, self.credentials_dir, now)
        self.state_file = state_file
        self.operator_name: str | None = store.operator.get("principal")
        self.default_subscription = store.operator.get("subscription") or next(
            iter(store.subscriptions), ""
        )
        self.administrator_name: str | None = store.administrator.get("principal")
        oidc_ssl = ssl.create_default_context()
        for ca in trust_ca or []:
            oidc_ssl.load_verify_locations(cafile=str(ca))
        self.ctx = Context(
            store=store,
            issuer=TokenIssuer(tenant_id=store.tenant_id, issuer_base=""),
            oidc=OidcVerifier(ssl_context=oidc_ssl),
            admin_key=secrets.token_urlsafe(24),
        )
        if settings:
            self.ctx.settings.update(settings)
        self.ctx.throttle.enabled = self.ctx.settings.throttling
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self.vault_sites = VaultSites(self.ctx)
        self._ready = threading.Event()
        self._error: BaseException | None = None

    # --- what clients need ---
    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def tenant_id(self) -> str:
        return self.ctx.store.tenant_id

    @property
    def operator_client_id(self) -> str:
        principal = self.principal(self.operator_name) if self.operator_name else None
        return (principal.app_id or "") if principal else ""

    def principal(self, display_name: str) -> Any:
        return next(
            (p for p in self.ctx.store.principals.values() if p.display_name == display_name), None
        )

    def vault_url(self, name: str) -> str:
        """The data-plane URL of a seeded Key Vault (its own loopback port)."""
        return self.vault_sites.url(name)

    def env(self) -> dict[str, str]:
        """The environment an Azure SDK client needs to use this azlocal."""
        env = {
            "AZURE_AUTHORITY_HOST": self.url,
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_SUBSCRIPTION_ID": self.default_subscription,
            "AZLOCAL_ARM_ENDPOINT": self.url,
            "AZLOCAL_CA_BUNDLE": str(self.ca_file),
            "AZLOCAL_ADMIN_KEY": self.ctx.admin_key,
            # A process that wants ManagedIdentityCredential points IMDS here.
            "AZLOCAL_IMDS_ENDPOINT": self.url,
        }
        seeded_vaults = vaults(self.ctx)
        if seeded_vaults:  # the first vault of the seed (kv-ml in the default seed)
            env["AZLOCAL_KEYVAULT_URL"] = str(seeded_vaults[0].properties["vaultUri"])
        if self.operator_name:
            env["AZURE_CLIENT_ID"] = self.operator_client_id
            secret = self.issued.secrets.get(self.operator_name)
            if secret:
                env["AZURE_CLIENT_SECRET"] = secret
            cert = self.issued.certificates.get(self.operator_name)
            if cert:
                env["AZURE_CLIENT_CERTIFICATE_PATH"] = str(cert)
        return env

    def admin_env(self) -> dict[str, str]:
        """The environment of the seed's administrator (`administrator:` in the seed, e.g.
        `platform-admin`, Owner of the subscription), for processes that set up a test
        world: the same endpoints and CA as `env()`, the administrator's credentials, and
        no admin API key."""
        name = self.administrator_name
        principal = self.principal(name) if name else None
        secret = self.issued.secrets.get(name) if name else None
        if principal is None or not secret:
            raise ValueError("the seed marks no administrator with a generated secret")
        env = {
            "AZURE_AUTHORITY_HOST": self.url,
            "AZURE_TENANT_ID": self.tenant_id,
            "AZURE_SUBSCRIPTION_ID": self.ctx.store.administrator.get("subscription")
            or self.default_subscription,
            "AZURE_CLIENT_ID": principal.app_id or "",
            "AZURE_CLIENT_SECRET": secret,
            "AZLOCAL_ARM_ENDPOINT": self.url,
            "AZLOCAL_CA_BUNDLE": str(self.ca_file),
        }
        cert = self.issued.certificates.get(name) if name else None
        if cert:
            env["AZURE_CLIENT_CERTIFICATE_PATH"] = str(cert)
        return env

    # --- lifecycle ---
    def _ssl(self) -> ssl.SSLContext:
        authority = CertificateAuthority("azlocal-ca")
        authority.ca.write(self.ca_file, self.state_dir / "ca.key")
        server = authority.server("azlocal", LOOPBACK_NAMES)
        server.write(self.state_dir / "server.pem", self.state_dir / "server.key")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.state_dir / "server.pem", self.state_dir / "server.key")
        return context

    async def _serve(self) -> None:
        app = create_app(self.ctx, self.credentials_dir)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        context = self._ssl()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=context, backlog=512)
        await site.start()
        if self.port == 0:
            self.port = int(self._runner.addresses[0][1])
        self.ctx.issuer.issuer_base = self.url
        await self.vault_sites.start(self.host, context)

    def start(self, timeout: float = 30) -> AzLocal:
        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._serve())
            except BaseException as err:  # surfaced by start()
                self._error = err
                self._ready.set()
                return
            self._ready.set()
            self._loop.run_forever()
            self._loop.run_until_complete(self._shutdown())
            self._loop.close()

        self._thread = threading.Thread(target=run, name="azlocal", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("azlocal did not start in time")
        if self._error is not None:
            raise RuntimeError(f"azlocal failed to start: {self._error}") from self._error
        return self

    async def _shutdown(self) -> None:
        await self.vault_sites.stop()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)

    def save(self) -> None:
        """Write the state (and the generated credentials beside it) to state_file."""
        if self.state_file is None:
            raise ValueError("no state file configured")
        self.ctx.store.save(self.state_file)
        self.issued.save(credentials_file(self.state_file))

    def __enter__(self) -> AzLocal:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the admin API, for tests ---
    def admin(self, method: str, path: str, body: Any = None, *, text: str | None = None) -> Any:
        data = (
            text.encode()
            if text is not None
            else (json.dumps(body).encode() if body is not None else None)
        )
        request = urllib.request.Request(  # noqa: S310 (our own https server)
            f"{self.url}/_azlocal/{path.lstrip('/')}",
            data=data,
            method=method,
            headers={ADMIN_HEADER: self.ctx.admin_key, "Content-Type": "application/json"},
        )
        context = ssl.create_default_context(cafile=str(self.ca_file))
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:  # noqa: S310
                payload = response.read()
        except urllib.error.HTTPError as err:
            raise RuntimeError(
                f"azlocal admin {method} {path}: {err.code} {err.read()!r}"
            ) from None
        return json.loads(payload) if payload else None
