"""The sandbox's private work dir on the host side: writing the input files into it and reading
result files back without following links the sandboxed command may have planted."""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path


def write_files(workdir: Path, files: Mapping[str, str | bytes]) -> None:
    """Write `files` (relative path -> content) under `workdir`; a path leading outside it is refused."""
    for rel, content in files.items():
        target = (workdir / rel).resolve()
        if workdir.resolve() not in target.parents:
            raise ValueError(f"sandbox file {rel!r} is outside the work dir")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)


def read_regular_file(path: Path, cap: int, *, tail: bool = False) -> bytes | None:
    """Read at most `cap` bytes (the first, or the last with `tail`) of a regular file, without
    following symlinks. None if the file is absent, a symlink or not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        if tail and info.st_size > cap:
            os.lseek(fd, info.st_size - cap, os.SEEK_SET)
        chunks = []
        remaining = cap
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def collect_files(
    workdir: Path, collect: Sequence[str], collect_tail: Sequence[str], cap: int
) -> dict[str, bytes]:
    """The `collect` files' first and the `collect_tail` files' last `cap` bytes (regular files only)."""
    collected = {}
    for rel, tail in [(r, False) for r in collect] + [(r, True) for r in collect_tail]:
        data = read_regular_file(workdir / rel, cap, tail=tail)
        if data is not None:
            collected[rel] = data
    return collected
