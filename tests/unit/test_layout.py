"""The source roots never shadow the standard library."""

from __future__ import annotations

import importlib
import operator
import subprocess
import sys
import sysconfig
from pathlib import Path


def test_operator_is_the_standard_library_module(repo: Path) -> None:
    assert Path(operator.__file__).parent == Path(sysconfig.get_paths()["stdlib"])
    assert not (repo / "operator" / "__init__.py").exists()


def test_operator_is_stdlib_even_from_the_repository_root(repo: Path) -> None:
    """`python -c` puts the working directory first on sys.path."""
    out = subprocess.run(
        [sys.executable, "-c", "import operator, aml_identity; print(operator.__file__)"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert Path(out).parent == Path(sysconfig.get_paths()["stdlib"])


def test_packages_import_from_their_source_roots(repo: Path) -> None:
    for name, root in (("aml_identity", "operator"), ("azlocal", "emulator")):
        module = importlib.import_module(name)
        assert Path(module.__file__ or "").parent == repo / root / name
