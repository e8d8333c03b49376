"""Versioned data from Python: read any file of any dvx revision, and ask what the CLI knows.

>>> import dvx
>>> with dvx.open("data/raw.csv", rev="v1") as f:
...     header = f.readline()
>>> dvx.ls("data", rev="v1")[0]["size"]

Everything goes through the ``dvx`` binary the wheel ships (``dvx ... --json``, ``dvx cat``),
so results have the CLI's JSON shapes. With fsspec installed, ``dvx://PATH`` URLs work in
pandas and pyarrow (see ``dvx.fs``).
"""

from __future__ import annotations

import io
import os
from typing import Any, Optional, Union

from ._cli import (
    DvxError,
    IntegrityError,
    IsAFolderError,
    NotFetchedError,
    PathNotFoundError,
    RevisionError,
    binary,
)
from ._file import DvxRawFile, reset_stats, stats
from . import _cli

__all__ = [
    "open",
    "read",
    "ls",
    "info",
    "status",
    "params",
    "metrics",
    "lineage",
    "DvxError",
    "RevisionError",
    "NotFetchedError",
    "IntegrityError",
    "PathNotFoundError",
    "IsAFolderError",
    "binary",
    "stats",
    "reset_stats",
]

PathLike = Union[str, "os.PathLike[str]"]
_BUFFER = 1 << 20


def _rev(rev: Optional[str]) -> str:
    return "HEAD" if rev is None or rev == "" else str(rev)


def _path(path: PathLike) -> str:
    p = os.fspath(path)
    if p.startswith("dvx://"):
        p = p[len("dvx://"):]
    return p


def info(path: PathLike, rev: Optional[str] = None, repo: PathLike = ".", fetch: bool = True) -> dict:
    """The entry of one path (``dvx ls --json REV PATH``): ``{"path", "kind", "mode", "size",
    "id"}``, without reading the file. With ``fetch``, a clone whose metadata is not here yet
    fetches what reading this path needs first."""
    repo, rev, p = os.fspath(repo), _rev(rev), _path(path)
    try:
        entries = _cli.run_json(["ls", rev, p], repo)
    except NotFetchedError:
        if not fetch:
            raise
        # Brings the metadata and this path's data from the default remote (dvx decides).
        _cli.run(["cat", "--fetch", f"{rev}:{p}", "--length", "0"], repo)
        entries = _cli.run_json(["ls", rev, p], repo)
    # `ls` of a file is that one entry; of a folder, what it holds.
    norm = os.path.normpath(p).replace(os.sep, "/")
    if len(entries) == 1 and entries[0]["kind"] != "dir" and entries[0]["path"] == norm:
        return entries[0]
    return {"path": norm, "kind": "dir", "mode": 0o755,
            "size": sum(e["size"] for e in entries), "id": None}


def open(path: PathLike, rev: Optional[str] = None, repo: PathLike = ".", mode: str = "rb",
         encoding: Optional[str] = None, errors: Optional[str] = None,
         newline: Optional[str] = None, fetch: bool = True,
         buffer_size: int = _BUFFER):
    """Open ``path`` as revision ``rev`` (default: HEAD) of the project in ``repo`` has it.

    ``mode`` is ``"rb"`` (a seekable ``io.BufferedReader``) or ``"r"`` (a ``TextIOWrapper``).
    Reads go through ranged ``dvx cat``: the file is never held whole in memory, and seeking
    reads only the chunks the new position needs. With ``fetch`` (the default), data this
    clone has not fetched comes from the default remote on first read.
    """
    if mode not in ("r", "rb", "rt"):
        raise ValueError(f"mode {mode!r}: dvx files are read-only, open them with 'r' or 'rb'")
    repo_s, rev_s, p = os.fspath(repo), _rev(rev), _path(path)
    entry = info(p, rev_s, repo_s, fetch=fetch)
    if entry["kind"] == "dir":
        raise IsAFolderError(f"{p}: is a folder", "list it with dvx.ls()", 2)
    raw = DvxRawFile(repo_s, rev_s, entry["path"], int(entry["size"]), fetch=fetch)
    buf = io.BufferedReader(raw, buffer_size=buffer_size)
    if mode == "rb":
        return buf
    return io.TextIOWrapper(buf, encoding=encoding or "utf-8", errors=errors, newline=newline)


def read(path: PathLike, rev: Optional[str] = None, repo: PathLike = ".", mode: str = "rb",
         encoding: Optional[str] = None, fetch: bool = True) -> Union[bytes, str]:
    """The whole content of ``path`` at ``rev``, verified against its id (``dvx cat``): bytes
    with ``mode="rb"``, text with ``mode="r"``."""
    if mode not in ("r", "rb", "rt"):
        raise ValueError(f"mode {mode!r}: use 'r' or 'rb'")
    args = ["cat", f"{_rev(rev)}:{_path(path)}"] + (["--fetch"] if fetch else [])
    data = _cli.run(args, os.fspath(repo))
    return data if mode == "rb" else data.decode(encoding or "utf-8")


def ls(path: PathLike = ".", rev: Optional[str] = None, repo: PathLike = ".",
       recursive: bool = False) -> list:
    """What ``rev`` holds at ``path``: ``dvx ls --json`` entries ``{"path", "kind", "mode",
    "size", "id"}``."""
    args = ["ls", _rev(rev), _path(path)] + (["-r"] if recursive else [])
    return _cli.run_json(args, os.fspath(repo))


def status(repo: PathLike = ".") -> dict:
    """``dvx status --json``: tracked data and stale stages."""
    return _cli.run_json(["status"], os.fspath(repo))


def params(rev: Optional[str] = None, repo: PathLike = ".") -> dict:
    """``dvx params show --json``: ``{STAGE: {"FILE:KEY": value}}``, of the workspace (``rev``
    None) or as the runs of ``rev`` used them."""
    return _cli.run_json(["params", "show"] + ([rev] if rev else []), os.fspath(repo))


def metrics(rev: Optional[str] = None, repo: PathLike = ".") -> dict:
    """``dvx metrics show --json``: ``{PATH: {KEY: value}}``, of the workspace or of ``rev``."""
    return _cli.run_json(["metrics", "show"] + ([rev] if rev else []), os.fspath(repo))


def lineage(path: PathLike, rev: Optional[str] = None, repo: PathLike = ".",
            downstream: bool = False, depth: Optional[int] = None) -> Any:
    """``dvx lineage PATH@REV --json``: where the file came from (or, with ``downstream``,
    what was derived from it)."""
    target = _path(path) + (f"@{rev}" if rev else "")
    args = ["lineage", target] + (["--downstream"] if downstream else [])
    if depth is not None:
        args += ["--depth", str(int(depth))]
    return _cli.run_json(args, os.fspath(repo))


def _register_fsspec() -> None:
    try:
        import fsspec
    except ImportError:
        return
    fsspec.register_implementation("dvx", "dvx.fs.DvxFileSystem", clobber=True)


_register_fsspec()
