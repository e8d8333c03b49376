"""Running the dvx binary, and turning its failures into Python exceptions.

The package drives the binary rather than linking the Rust crates: the JSON the commands print
with ``--json`` (documented in the book and in ``schemas/``) is the contract.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from typing import Any, Sequence

__all__ = [
    "DvxError",
    "RevisionError",
    "NotFetchedError",
    "IntegrityError",
    "PathNotFoundError",
    "IsAFolderError",
    "binary",
    "run",
    "run_json",
    "error_from",
]


class DvxError(Exception):
    """A dvx command failed. ``message`` and ``hint`` are the CLI's ``error:`` and ``hint:``
    lines; ``exit_code`` is its exit status (1 failed, 2 invalid input, 3 damaged data)."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 1,
                 command: Sequence[str] = ()):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code
        self.command = list(command)

    def __str__(self) -> str:
        return self.message + (f"\nhint: {self.hint}" if self.hint else "")

    def __reduce__(self):
        # Rebuilt from its fields (the default would pass only the message): errors survive
        # pickling across processes (multiprocessing, dask).
        return (self.__class__, (self.message, self.hint, self.exit_code, self.command))


class RevisionError(DvxError, LookupError):
    """The revision is unknown to dvx and git, ambiguous, or a git revision without dvx.lock."""


class NotFetchedError(DvxError):
    """The data asked for is not in this project's store (``dvx pull``, or ``fetch=True``)."""


class IntegrityError(DvxError):
    """Damaged or missing stored data (exit status 3)."""


class PathNotFoundError(DvxError, FileNotFoundError):
    """The path is not in the revision (an ``except FileNotFoundError`` catches it)."""

    def __str__(self) -> str:  # FileNotFoundError's own __str__ would print errno fields.
        return DvxError.__str__(self)


class IsAFolderError(DvxError, IsADirectoryError):
    """A folder where a file was expected."""

    def __str__(self) -> str:
        return DvxError.__str__(self)


def binary() -> str:
    """The dvx binary: ``$DVX_BIN``, else the one the wheel installed next to this Python, else
    the first ``dvx`` on ``PATH``."""
    env = os.environ.get("DVX_BIN")
    if env:
        return env
    exe = "dvx.exe" if sys.platform == "win32" else "dvx"
    for scheme_dir in (sysconfig.get_path("scripts"), sysconfig.get_path("scripts", f"{os.name}_user")):
        if scheme_dir:
            cand = os.path.join(scheme_dir, exe)
            if os.path.isfile(cand) and os.access(cand, os.X_OK):
                return cand
    found = shutil.which(exe)
    if found:
        return found
    raise DvxError("the dvx binary is not installed",
                   "install the wheel (`pip install dvx`) or set DVX_BIN to the binary", 1)


def error_from(code: int, stderr: bytes | str, command: Sequence[str]) -> DvxError:
    """The exception for a failed command, from its exit status and its error:/hint: lines."""
    text = stderr.decode("utf-8", "replace") if isinstance(stderr, bytes) else stderr
    message, hint = None, None
    for line in text.splitlines():
        if line.startswith("error: ") and message is None:
            message = line[len("error: "):].strip()
        elif line.startswith("hint: ") and hint is None:
            hint = line[len("hint: "):].strip()
    if message is None:
        # A usage error from the argument parser, or a crash: keep what it said.
        message = text.strip().splitlines()[-1] if text.strip() else f"dvx exited with status {code}"
    cls = DvxError
    if code == 3:
        cls = IntegrityError
    elif ": not found in commit " in message or " is not in " in message:
        cls = PathNotFoundError
    elif "is a folder" in message:
        cls = IsAFolderError
    elif message.startswith(("unknown revision", "ambiguous revision")) or "has no dvx.lock" in message:
        cls = RevisionError
    elif message.startswith("nothing fetched yet") or "which is not fetched yet" in message:
        cls = NotFetchedError
    return cls(message, hint, code, command)


def _argv(args: Sequence[str], json_out: bool) -> list[str]:
    # stderr is read only when the command fails: notes (which git revision was taken) and
    # warnings on success are dropped, as a library caller has no terminal to show them on.
    return [binary(), *(["--json"] if json_out else []), *args]


def run(args: Sequence[str], repo: str | os.PathLike = ".", json_out: bool = False) -> bytes:
    """Run ``dvx ARGS`` in ``repo`` and return its stdout; raise a ``DvxError`` on failure."""
    argv = _argv(args, json_out)
    try:
        p = subprocess.run(argv, cwd=os.fspath(repo), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    except FileNotFoundError as e:
        if not os.path.isdir(os.fspath(repo)):
            raise PathNotFoundError(f"{os.fspath(repo)}: no such folder",
                                    "pass repo= the project's folder", 2, argv) from None
        raise DvxError(f"cannot run {argv[0]}: {e.strerror}",
                       "install the wheel (`pip install dvx`) or set DVX_BIN to the binary",
                       1, argv) from None
    if p.returncode != 0:
        raise error_from(p.returncode, p.stderr, argv)
    return p.stdout


def run_json(args: Sequence[str], repo: str | os.PathLike = ".") -> Any:
    """Run ``dvx --json ARGS`` and parse what it printed."""
    out = run(args, repo, json_out=True)
    return json.loads(out) if out.strip() else None
