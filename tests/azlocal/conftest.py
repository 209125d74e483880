"""azlocal for contract tests: one server per session; settings and faults reset per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from azlocal.context import Settings
from azlocal.server import AzLocal


@pytest.fixture(scope="session")
def azlocal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzLocal]:
    server = AzLocal(tmp_path_factory.mktemp("azlocal")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def _fresh_settings(azlocal: AzLocal) -> Iterator[None]:
    yield
    azlocal.admin("PATCH", "settings", {k: v for k, v in vars(Settings()).items()})
    azlocal.admin("DELETE", "faults")
    azlocal.ctx.throttle.reset()
