"""What every request handler can reach: state, settings, tokens, faults and logs."""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .store import Store
from .throttle import Throttle
from .tokens import OidcVerifier, TokenIssuer

LOG_LIMIT = 20_000

# Per-request facts the handlers record for the request log and response headers.
OPERATION = web.RequestKey("operation", str)
PRINCIPAL = web.RequestKey("principal", str)
RATELIMIT = web.RequestKey("ratelimit", tuple)
CLIENT_AUTH = web.RequestKey("client_auth", str)  # secret, certificate:<alg>, federated


# Sign-in (tokens, OIDC discovery) is left out of the chaos rates.
SIGN_IN_PATHS = ("/oauth2/", "/.well-known/", "/discovery/")


@dataclass
class Settings:
    """Behaviour switches, changeable at run time through the admin API."""

    throttling: bool = False
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    # Entra replicates a new principal to ARM's view after a delay; role assignments
    # without principalType fail with PrincipalNotFound until then.
    replication_delay_seconds: float = 0.0
    page_size: int = 100
    role_assignment_limit: int = 4000
    # How long one federated-credential write holds its identity; a second write to the
    # same identity meanwhile gets Azure's 409 (ConcurrentFederatedIdentity...).
    fic_write_seconds: float = 0.05
    clock_offset_seconds: float = 0.0
    # Key Vault: how many polls of a certificate's pending operation still answer
    # inProgress before it completes (the create itself always answers inProgress).
    keyvault_pending_polls: int = 1
    # Microsoft Graph serves reads from replicas that may not have seen a write yet: for
    # this long after an application's credentials change, reads of it show them as they
    # were before (0: every read is current).
    graph_read_lag_seconds: float = 0.0
    # Chaos: the share of requests (ARM, Graph, Key Vault; never token requests) answered
    # 500 or 503, and the share whose connection is reset without an answer.
    server_error_rate: float = 0.0
    reset_rate: float = 0.0

    def as_json(self) -> dict[str, Any]:
        """The settings under the camelCase names the admin API answers and `update`
        takes (it takes snake_case too)."""
        return {_camel(name): value for name, value in vars(self).items()}

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            snake = re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()
            if not hasattr(self, snake):
                raise KeyError(key)
            setattr(self, snake, type(getattr(self, snake))(value))


def _camel(snake: str) -> str:
    first, *rest = snake.split("_")
    return first + "".join(word.capitalize() for word in rest)


@dataclass
class FaultRule:
    """Answer the next `count` requests matching method and path with an error."""

    method: str
    path_pattern: str
    count: int
    status: int
    code: str
    message: str
    retry_after: float | None = None

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method.upper())) and bool(
            re.search(self.path_pattern, path, re.IGNORECASE)
        )


@dataclass
class Context:
    store: Store
    issuer: TokenIssuer
    oidc: OidcVerifier
    admin_key: str
    settings: Settings = field(default_factory=Settings)
    faults: list[FaultRule] = field(default_factory=list)
    # The newest requests only, so a long-running azlocal keeps a bounded memory.
    log: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOG_LIMIT))
    counters: Counter[tuple[str, int]] = field(default_factory=Counter)
    fic_busy_until: dict[str, float] = field(default_factory=dict)
    # Application object id -> (monotonic time of the last credential write, the
    # certificates and secrets before it): what a lagging Graph replica still serves.
    graph_before_write: dict[str, tuple[float, list[Any], list[Any]]] = field(default_factory=dict)
    throttle: Throttle = field(init=False)

    def __post_init__(self) -> None:
        self.throttle = Throttle(clock=time.monotonic)
        self.issuer.clock = self.now

    def now(self) -> float:
        """Wall-clock seconds, shifted by the admin-set offset (for expiry tests)."""
        return time.time() + self.settings.clock_offset_seconds

    def chaos(self, path: str) -> str | None:
        """ "error", "reset" or None, drawn for one request by the chaos rates."""
        if path.startswith("/_azlocal") or any(part in path for part in SIGN_IN_PATHS):
            return None
        draw = random.random()  # noqa: S311 (chaos, not security)
        if draw < self.settings.reset_rate:
            return "reset"
        if draw < self.settings.reset_rate + self.settings.server_error_rate:
            return "error"
        return None

    def take_fault(self, method: str, path: str) -> FaultRule | None:
        for rule in self.faults:
            if rule.count > 0 and rule.matches(method, path):
                rule.count -= 1
                return rule
        return None

    async def inject_latency(self) -> None:
        delay = self.settings.latency_ms + random.uniform(0, self.settings.jitter_ms)  # noqa: S311
        if delay > 0:
            await asyncio.sleep(delay / 1000)
