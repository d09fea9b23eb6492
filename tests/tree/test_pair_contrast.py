"""treeplay.tree.pair_contrast: what pairs contrast besides security (hand-counted expectations)."""

from __future__ import annotations

import pytest

from treeplay.tree.pair_contrast import PairContrast, contrast, contrast_by_mode, opens_with_comment
from treeplay.tree.records import Pair


def _pair(mode: str, chosen: str, rejected: str, *, language: str = "py",
          chosen_ids: tuple[int, ...] | None = None, rejected_ids: tuple[int, ...] | None = None) -> Pair:  # fmt: skip
    return Pair(task_id="t", node_id="n1", mode=mode, language=language, cwe="CWE-22", instruction="i",  # type: ignore[arg-type]
                prefix="def f(p):\n", chosen=chosen, rejected=rejected, chosen_token_ids=chosen_ids,
                rejected_token_ids=rejected_ids)  # fmt: skip


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        ("\n    # open the file\n    return open(p)\n", "py", True),
        ("    return open(p)  # a trailing comment\n", "py", False),
        ('    """Open p."""\n    return open(p)\n', "py", False),  # a docstring is code, not a comment
        ("  // read it\n  return fs.readFileSync(p);\n", "js", True),
        ("/* read */\nreturn x;", "c", True),
        ("# not a comment in C\n", "c", False),
        ("// not a comment in Python\n", "py", False),
        ("   \n\n", "py", False),
        ("# ruby comment\n", "rb", True),
    ],
)
def test_opens_with_comment(text: str, language: str, expected: bool) -> None:
    assert opens_with_comment(text, language) is expected


def test_golden_vs_branch_contrast_counts_characters_and_comment_openers() -> None:
    pairs = [
        # 14 vs 15 characters: chosen not longer; the rejected side opens with a comment
        _pair("golden-vs-branch", "return safe(p)", "# join\nopen(p)"),
        # 20 vs 7: chosen longer
        _pair("golden-vs-branch", "p = clean(p)\nopen(p)", "open(p)"),
        # 3 vs 3 (tie): not longer; the comment opener comes after a blank line
        _pair("golden-vs-branch", "abc", "\n#x"),
    ]
    assert contrast("golden-vs-branch", pairs) == PairContrast(
        mode="golden-vs-branch", pairs=3, chosen_by_dataset=True,
        chosen_chars=14, rejected_chars=7, chosen_longer=1 / 3,
        chosen_opens_with_comment=0.0, rejected_opens_with_comment=2 / 3,
    )  # fmt: skip


def test_lengths_are_characters_even_where_token_ids_were_recorded() -> None:
    # recorded ids (1 token each side) must not change the unit: every row of the table is in characters
    pairs = [_pair("sibling", "one two", "one", chosen_ids=(1,), rejected_ids=(2,)), _pair("sibling", "a", "bc")]
    result = contrast("sibling", pairs)
    assert (result.chosen_chars, result.rejected_chars, result.chosen_longer) == (4, 2.5, 0.5)
    assert result.chosen_by_dataset is False


def test_sft_has_no_rejected_side() -> None:
    result = contrast("sft", [_pair("sft", "# c\nx = 1", "")])
    assert result == PairContrast("sft", 1, True, 9, None, None, 1.0, None)


def test_contrast_by_mode_groups_and_orders_modes() -> None:
    pairs = [_pair("sibling", "a", "b"), _pair("golden-vs-branch", "a", "b"), _pair("sibling", "a b", "c")]
    assert [(c.mode, c.pairs) for c in contrast_by_mode(pairs)] == [("golden-vs-branch", 1), ("sibling", 2)]


def test_contrast_refuses_mixed_or_empty_input() -> None:
    with pytest.raises(ValueError, match="'sibling' given as mode 'golden-vs-branch'"):
        contrast("golden-vs-branch", [_pair("sibling", "a", "b")])
    with pytest.raises(ValueError, match="no pairs of mode 'sft'"):
        contrast("sft", [])
