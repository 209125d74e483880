"""The local world's processes: started, tied to their parent, waited for, reported."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TypeVar

LOG_TAIL_LINES = 60


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports (held open together so they cannot repeat)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """preexec_fn: the child gets SIGKILL when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


@dataclass
class Component:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] | None = None
    process: subprocess.Popen[bytes] | None = None
    _log_file: IO[bytes] | None = field(default=None, repr=False)

    def start(self, *, attached: bool) -> None:
        self._log_file = self.log.open("ab")
        self.process = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=self.env,
            preexec_fn=_die_with_parent if attached else None,
        )

    def stop(self, timeout: float = 15.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def tail(self, lines: int = LOG_TAIL_LINES) -> str:
        if not self.log.exists():
            return "(no log)"
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])


def component_report(components: list[Component]) -> str:
    parts = []
    for c in components:
        state = "not started"
        if c.process is not None:
            code = c.process.poll()
            state = "running" if code is None else f"exited with {code}"
        parts.append(f"--- {c.name} ({state}); last lines of {c.log}:\n{c.tail()}")
    return "\n".join(parts)


def wait_for(
    components: list[Component],
    ready: Callable[[], bool],
    what: str,
    deadline: float,
    error: type[Exception],
) -> None:
    """Poll `ready` until `deadline`; raise `error` at the deadline, or at once when one
    of `components` has exited."""
    while time.monotonic() < deadline:
        for c in components:
            if c.process is not None and c.process.poll() is not None:
                raise error(f"{c.name} exited while waiting for {what}")
        if ready():
            return
        time.sleep(0.2)
    raise error(f"timed out waiting for {what}")


T = TypeVar("T")


def each(items: Iterable[T], action: Callable[[T], object]) -> None:
    """`action` on every item, even after one fails (clean-ups); the first failure is
    raised once all have run."""
    failures: list[Exception] = []
    for item in items:
        try:
            action(item)
        except Exception as error:  # the others still run; raised below
            failures.append(error)
    if failures:
        raise failures[0]
