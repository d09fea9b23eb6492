from __future__ import annotations

import pytest

from treeplay.tree.offsets import (
    common_prefix_length,
    line_number_start,
    line_of_offset,
    line_start,
    place_offset,
    prefix_hash,
    snap_to_token,
)

TEXT = "ab\ncd ef\n\ngh"
# token starts of a made-up tokenization: "ab" "\ncd" " ef" "\n\n" "gh"
BOUNDARIES = (0, 2, 5, 8, 10)


def test_snap_to_token_floors_to_the_token_holding_the_offset() -> None:
    assert snap_to_token(0, BOUNDARIES) == (0, 0)
    assert snap_to_token(3, BOUNDARIES) == (2, 1)  # inside "\ncd"
    assert snap_to_token(5, BOUNDARIES) == (5, 2)  # exactly on a boundary stays
    assert snap_to_token(11, BOUNDARIES) == (10, 4)
    assert snap_to_token(7, ()) == (7, None)
    with pytest.raises(ValueError):
        snap_to_token(-1, BOUNDARIES)


def test_line_helpers_agree_with_each_other() -> None:
    assert line_start(TEXT, 6) == 3
    assert line_start(TEXT, 3) == 3
    assert line_start(TEXT, 0) == 0
    assert line_number_start(TEXT, 1) == 0
    assert line_number_start(TEXT, 2) == 3
    assert line_number_start(TEXT, 3) == 9
    assert line_number_start(TEXT, 4) == 10
    assert line_number_start(TEXT, 5) is None
    for line in (1, 2, 3, 4):
        start = line_number_start(TEXT, line)
        assert start is not None and line_of_offset(TEXT, start) == line


def test_place_offset_line_then_token() -> None:
    # offset 6 ("e" of "ef") -> line start 3 -> token holding it starts at 2 ("\ncd")
    assert place_offset(TEXT, 6, BOUNDARIES, snap_line=True) == (2, 1)
    assert place_offset(TEXT, 6, BOUNDARIES, snap_line=False) == (5, 2)
    assert place_offset(TEXT, 99, (), snap_line=False) == (len(TEXT), None)


def test_common_prefix_and_hash() -> None:
    assert common_prefix_length("abcx", "abcy") == 3
    assert common_prefix_length("ab", "abc") == 2
    assert common_prefix_length("", "a") == 0
    assert prefix_hash("a") != prefix_hash("b")
    assert len(prefix_hash("a")) == 64
