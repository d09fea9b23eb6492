"""Character/token offset utilities for placing risk nodes on a code path.

All offsets here are character offsets into a *path*: the text after `task.prefix` (the golden
completion for trunk nodes, or `golden[:o] + completion` inside a branch). Token boundaries come
from `Scored.char_offsets` of the policy scoring that path, so a node prefix never ends in the
middle of one of the policy's tokens.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Sequence


def snap_to_token(offset: int, boundaries: Sequence[int]) -> tuple[int, int | None]:
    """Largest token boundary <= `offset` and its token index.

    `boundaries` are the start offsets of each token (sorted ascending, as in
    `Scored.char_offsets`). With no boundaries the offset is returned unchanged and the token
    index is None. An offset before the first token snaps to 0 (token 0).
    """
    if offset < 0:
        raise ValueError(f"negative offset {offset}")
    if not boundaries:
        return offset, None
    index = bisect.bisect_right(boundaries, offset) - 1
    if index < 0:
        return 0, 0
    return int(boundaries[index]), index


def line_start(text: str, offset: int) -> int:
    """Offset of the first character of the line holding `offset`."""
    if offset < 0 or offset > len(text):
        raise ValueError(f"offset {offset} outside text of length {len(text)}")
    return text.rfind("\n", 0, offset) + 1


def line_number_start(text: str, line: int) -> int | None:
    """Offset of the first character of 1-based `line` in `text`; None if the text is shorter."""
    if line < 1:
        return None
    position = 0
    for _ in range(line - 1):
        newline = text.find("\n", position)
        if newline < 0:
            return None
        position = newline + 1
    return position


def line_of_offset(text: str, offset: int) -> int:
    """1-based line number of `offset` in `text`."""
    return text.count("\n", 0, offset) + 1


def common_prefix_length(a: str, b: str) -> int:
    """Number of leading characters `a` and `b` share."""
    limit = min(len(a), len(b))
    for index in range(limit):
        if a[index] != b[index]:
            return index
    return limit


def place_offset(
    path: str,
    offset: int,
    boundaries: Sequence[int] = (),
    *,
    snap_line: bool = False,
) -> tuple[int, int | None]:
    """Final node position on `path`: optionally move to the line start, then snap to a token.

    Returns (char_offset, token_offset). The result is always <= the requested offset, so a
    branch sampled from it can still diverge where the proposal pointed.
    """
    offset = max(0, min(offset, len(path)))
    if snap_line:
        offset = line_start(path, offset)
    return snap_to_token(offset, boundaries)


def prefix_hash(code_prefix: str) -> str:
    """sha256 hex digest of the code prefix a node's branches continue."""
    return hashlib.sha256(code_prefix.encode("utf-8")).hexdigest()
