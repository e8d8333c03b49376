"""fsspec for dvx: ``dvx://PATH`` with ``storage_options={"rev": ..., "repo": ...}``.

>>> import pandas as pd
>>> pd.read_csv("dvx://data/raw.csv", storage_options={"rev": "v1", "repo": "."})

Registered under the ``dvx`` protocol by the package's ``fsspec.specs`` entry point and on
``import dvx``. Files are read through ranged ``dvx cat``, so pyarrow reading one column of a
Parquet file fetches that column's bytes (and the footer), not the whole file.
"""

from __future__ import annotations

from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

from . import _file, info as _info, ls as _ls

__all__ = ["DvxFileSystem"]


def _entry(e: dict) -> dict:
    return {
        "name": e["path"],
        "size": e["size"],
        "type": "directory" if e["kind"] == "dir" else "file",
        "kind": e["kind"],
        "mode": e["mode"],
        "id": e["id"],
    }


class DvxFileSystem(AbstractFileSystem):
    """A read-only view of one revision of a dvx project.

    ``repo``: the project's folder (default: the current one); ``rev``: any revision dvx
    takes, its own or git's (default HEAD); ``fetch``: bring data this clone lacks from the
    default remote on first read (default True).
    """

    protocol = "dvx"
    root_marker = ""
    # Ranged reads are one process each: fetch in blocks, and keep reading ahead a block.
    default_block_size = 1 << 20

    def __init__(self, repo: str = ".", rev: str | None = None, fetch: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.repo = str(repo)
        self.rev = rev or "HEAD"
        self.fetch = fetch

    @classmethod
    def _strip_protocol(cls, path):
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("dvx://"):
            path = path[len("dvx://"):]
        path = path.lstrip("/").rstrip("/")
        return path or "."

    def ls(self, path, detail=True, **kwargs):
        path = self._strip_protocol(path)
        entries = [_entry(e) for e in _ls(path, rev=self.rev, repo=self.repo)]
        return entries if detail else [e["name"] for e in entries]

    def info(self, path, **kwargs):
        path = self._strip_protocol(path)
        e = _info(path, rev=self.rev, repo=self.repo, fetch=self.fetch)
        out = _entry(e)
        out["name"] = path if path != "." else ""
        return out

    def ukey(self, path):
        return self.info(path)["id"]

    def cat_file(self, path, start=None, end=None, **kwargs):
        path = self._strip_protocol(path)
        size = self.info(path)["size"]
        start = 0 if start is None else (start if start >= 0 else max(size + start, 0))
        end = size if end is None else (end if end >= 0 else max(size + end, 0))
        if end <= start:
            return b""
        return _file.cat_range(self.repo, self.rev, path, start, end - start, self.fetch)

    def _open(self, path, mode="rb", block_size=None, autocommit=True, cache_options=None, **kwargs):
        if mode != "rb":
            raise NotImplementedError("dvx:// is read-only: open with mode 'rb'")
        return DvxFile(self, path, mode=mode, block_size=block_size or self.default_block_size,
                       cache_options=cache_options, **kwargs)


class DvxFile(AbstractBufferedFile):
    """A file of a revision; each block comes from one ranged ``dvx cat``."""

    def __init__(self, fs, path, **kwargs):
        kwargs.setdefault("cache_type", "readahead")
        info = fs.info(path)
        super().__init__(fs, path, size=info["size"], **kwargs)
        self.details = info

    def _fetch_range(self, start, end):
        end = min(end, self.size)
        if end <= start:
            return b""
        return _file.cat_range(self.fs.repo, self.fs.rev, self.path, start, end - start, self.fs.fetch)
