#!/usr/bin/env python3
"""Build the dvx wheel around a dvx binary that is already built.

    python3 python/build_wheel.py target/debug/dvx OUTDIR     # prints the wheel's path

The wheel is the one `maturin build` makes from python/pyproject.toml (the binary as a script,
the `dvx` module, the metadata and fsspec entry point from pyproject.toml), without a second
cargo build: the tests package the very binary they test. Releases use maturin.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import sys
import sysconfig
import zipfile

try:
    import tomllib
except ImportError:  # Python < 3.11
    tomllib = None

HERE = os.path.dirname(os.path.abspath(__file__))


def version() -> str:
    # The workspace's version, as maturin takes it from Cargo.toml.
    with open(os.path.join(HERE, "..", "Cargo.toml"), encoding="utf-8") as f:
        m = re.search(r'^\[workspace\.package\][^\[]*?^version\s*=\s*"([^"]+)"', f.read(), re.M | re.S)
    if not m:
        sys.exit("build_wheel.py: no [workspace.package] version in Cargo.toml")
    return m.group(1)


def project() -> dict:
    if tomllib is None:
        sys.exit("build_wheel.py: needs Python 3.11 or later (tomllib)")
    with open(os.path.join(HERE, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def metadata(p: dict, ver: str) -> str:
    lines = ["Metadata-Version: 2.1", f"Name: {p['name']}", f"Version: {ver}",
             f"Summary: {p.get('description', '')}",
             f"Requires-Python: {p.get('requires-python', '>=3.9')}",
             f"License: {p.get('license', {}).get('text', '')}"]
    lines += [f"Classifier: {c}" for c in p.get("classifiers", [])]
    for extra, reqs in p.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f"Requires-Dist: {r} ; extra == \"{extra}\"" for r in reqs]
    with open(os.path.join(HERE, p.get("readme", "README.md")), encoding="utf-8") as f:
        readme = f.read()
    lines.append("Description-Content-Type: text/markdown")
    return "\n".join(lines) + "\n\n" + readme


def entry_points(p: dict) -> str:
    out = []
    for group, eps in p.get("entry-points", {}).items():
        out.append(f"[{group}]")
        out += [f"{k} = {v}" for k, v in eps.items()]
        out.append("")
    return "\n".join(out)


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    binary, outdir = sys.argv[1], sys.argv[2]
    p, ver = project(), version()
    name = p["name"]
    plat = sysconfig.get_platform().replace("-", "_").replace(".", "_")
    dist, data = f"{name}-{ver}.dist-info", f"{name}-{ver}.data"
    os.makedirs(outdir, exist_ok=True)
    wheel = os.path.join(outdir, f"{name}-{ver}-py3-none-{plat}.whl")
    record = []

    with zipfile.ZipFile(wheel + ".part", "w") as z:
        def add(arc: str, content: bytes, mode: int = 0o644, compress: bool = True) -> None:
            info = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100000 | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
            z.writestr(info, content)
            digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
            record.append(f"{arc},sha256={digest.decode()},{len(content)}")

        pkg = os.path.join(HERE, "dvx")
        for fn in sorted(os.listdir(pkg)):
            if fn.endswith(".py"):
                with open(os.path.join(pkg, fn), "rb") as f:
                    add(f"dvx/{fn}", f.read())
        with open(binary, "rb") as f:
            # Stored, not compressed: a debug binary deflates slowly, and this is a test wheel.
            add(f"{data}/scripts/dvx", f.read(), 0o755, compress=False)
        add(f"{dist}/METADATA", metadata(p, ver).encode())
        add(f"{dist}/WHEEL", b"Wheel-Version: 1.0\nGenerator: dvx build_wheel.py\n"
            b"Root-Is-Purelib: false\nTag: py3-none-" + plat.encode() + b"\n")
        add(f"{dist}/entry_points.txt", entry_points(p).encode())
        record.append(f"{dist}/RECORD,,")
        info = zipfile.ZipInfo(f"{dist}/RECORD", date_time=(1980, 1, 1, 0, 0, 0))
        z.writestr(info, "\n".join(record) + "\n")
    os.replace(wheel + ".part", wheel)
    print(wheel)


if __name__ == "__main__":
    main()
