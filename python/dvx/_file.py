"""A seekable, streaming file object over ``dvx cat REV:PATH --offset N --length M``.

Nothing holds the whole file: a read after a seek asks for that range only; reads that keep
going forward switch to one ``dvx cat --offset N`` process streaming the rest, read as needed
and stopped on the next seek or on close.
"""

from __future__ import annotations

import io
import subprocess
import tempfile
import threading
from typing import Optional

from . import _cli

# Ranged reads in a row, each starting where the last ended, before a stream takes over.
_SEQUENTIAL_BEFORE_STREAM = 2

_lock = threading.Lock()
_stats = {"cat_calls": 0, "bytes_requested": 0, "bytes_read": 0}


def stats() -> dict:
    """What this process asked of ``dvx cat``: calls, bytes asked for (the sum of the ranges'
    lengths, and for streams the bytes taken from them) and bytes received. For tests and
    measurements; ``reset_stats()`` zeroes it."""
    with _lock:
        return dict(_stats)


def reset_stats() -> None:
    with _lock:
        for k in _stats:
            _stats[k] = 0


def _count(calls: int = 0, requested: int = 0, read: int = 0) -> None:
    with _lock:
        _stats["cat_calls"] += calls
        _stats["bytes_requested"] += requested
        _stats["bytes_read"] += read


def cat_range(repo: str, rev: str, path: str, offset: int, length: int, fetch: bool) -> bytes:
    """Bytes ``offset..offset+length`` of ``path`` at ``rev`` (fewer at the end of the file)."""
    args = ["cat", f"{rev}:{path}", "--offset", str(offset), "--length", str(length)]
    if fetch:
        args.append("--fetch")
    out = _cli.run(args, repo)
    _count(calls=1, requested=length, read=len(out))
    return out


class DvxRawFile(io.RawIOBase):
    """The raw file; ``dvx.open`` wraps it in a ``BufferedReader`` (and a ``TextIOWrapper``)."""

    def __init__(self, repo: str, rev: str, path: str, size: int, fetch: bool = True):
        super().__init__()
        self.repo, self.rev, self.path, self.size, self.fetch = repo, rev, path, size, fetch
        self.name = f"dvx://{path}@{rev}"
        self._pos = 0
        self._proc: Optional[subprocess.Popen] = None
        self._proc_pos = -1
        self._last_end = -1
        self._sequential = 0

    # io.RawIOBase
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence {whence}")
        if pos < 0:
            raise ValueError("negative seek position")
        self._pos = pos
        return pos

    def readinto(self, b) -> int:
        if self.closed:
            raise ValueError("I/O operation on closed file")
        want = min(len(b), max(self.size - self._pos, 0))
        if want == 0:
            return 0
        if self._proc is not None and self._proc_pos == self._pos:
            n = self._read_stream(b, want)
        elif self._sequential >= _SEQUENTIAL_BEFORE_STREAM and self._pos == self._last_end:
            self._start_stream()
            n = self._read_stream(b, want)
        else:
            self._stop_stream()
            self._sequential = self._sequential + 1 if self._pos == self._last_end else 1
            data = cat_range(self.repo, self.rev, self.path, self._pos, want, self.fetch)
            n = len(data)
            b[:n] = data
        self._pos += n
        self._last_end = self._pos
        return n

    def close(self) -> None:
        self._stop_stream()
        super().close()

    # The stream
    def _start_stream(self) -> None:
        self._stop_stream()
        args = ["cat", f"{self.rev}:{self.path}", "--offset", str(self._pos)]
        if self.fetch:
            args.append("--fetch")
        argv = [_cli.binary(), *args]
        # stderr goes to an unnamed file, not a pipe: a pipe nobody reads could fill and
        # stall dvx.
        self._err = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(argv, cwd=self.repo, stdout=subprocess.PIPE,
                                      stderr=self._err, stdin=subprocess.DEVNULL)
        self._proc_pos = self._pos
        _count(calls=1)

    def _read_stream(self, b, want: int) -> int:
        assert self._proc is not None and self._proc.stdout is not None
        view = memoryview(b)[:want]
        n = self._proc.stdout.readinto(view) or 0
        if n == 0:
            code = self._proc.wait()
            self._err.seek(0)
            err = self._err.read()
            argv = self._proc.args
            self._stop_stream()
            if code != 0:
                raise _cli.error_from(code, err, argv)
            raise _cli.IntegrityError(f"{self.path}: ended at byte {self._pos} of {self.size}",
                                      "run `dvx fsck`", 3, argv)
        self._proc_pos += n
        _count(requested=n, read=n)
        return n

    def _stop_stream(self) -> None:
        if self._proc is None:
            return
        proc, self._proc = self._proc, None
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
        proc.wait()
        self._err.close()
        self._proc_pos = -1

