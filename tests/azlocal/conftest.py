"""azlocal contract tests: settings and faults reset after every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from azlocal.context import Settings
from azlocal.server import AzLocal


@pytest.fixture(autouse=True)
def _fresh_settings(azlocal: AzLocal) -> Iterator[None]:
    yield
    azlocal.admin("PATCH", "settings", {k: v for k, v in vars(Settings()).items()})
    azlocal.admin("DELETE", "faults")
    azlocal.ctx.throttle.reset()
