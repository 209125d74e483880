"""Run an Argo CD health.lua the way Argo CD does (Lua 5.1: gopher-lua's semantics)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lupa.lua51 as lua51


def health(script: Path, obj: dict[str, Any]) -> dict[str, str]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = runtime.table_from(obj, recursive=True)
    result = runtime.execute(script.read_text())
    return {key: str(result[key]) for key in ("status", "message") if result[key] is not None}
