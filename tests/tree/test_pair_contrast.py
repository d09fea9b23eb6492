"""treeplay.tree.pair_contrast: what pairs contrast besides security (hand-counted expectations)."""

from __future__ import annotations

import pytest

from treeplay.tree.pair_contrast import (
    PairContrast,
    called_names,
    chosen_calls,
    contrast,
    contrast_by_mode,
    opens_with_comment,
)
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
        # safe: chosen only in pair 1 (+1); clean: chosen only in pair 2 (+1); open: rejected only in
        # pair 1 (-1), both sides in pair 2 (0): not listed
        chosen_calls=(("clean", 1), ("safe", 1)),
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("return jsonify({'a': 1}), 400", {"jsonify"}),
        ("p = os.path.join(a, b)\nif (ok(p)):\n    print (p)", {"join", "ok", "print"}),
        ("for (i = 0; i < n; i++) { while (x) { f(i); } }", {"f"}),  # C keywords are not calls
        ("def g(x):\n    return (x)", {"g"}),  # a def's own name is a call site here: harmless, both sides
        ("$(sel).hide()", {"hide"}),  # `$(` is not an identifier call
        ("no calls here", set()),
    ],
)
def test_called_names(text: str, expected: set[str]) -> None:
    assert called_names(text) == expected


def test_chosen_calls_nets_pairs_and_keeps_the_top_positive_ones() -> None:
    pairs = [
        _pair("sibling", "return jsonify(x)", "return x"),  # jsonify +1
        _pair("sibling", "return jsonify(escape(x))", "return x"),  # jsonify +1, escape +1
        _pair("sibling", "return jsonify(x)", "return jsonify(x)"),  # both sides: 0
        _pair("sibling", "return x", "os.system(x)"),  # system -1
        _pair("sibling", "quote(x); quote(y)", "x"),  # quote +1 (once per pair, not per call)
        _pair("sibling", "a(x)", "b(x)"),  # a +1, b -1
    ]
    # jsonify 2; a, escape, quote 1 each (ties by name); system, b negative: never listed
    assert chosen_calls(pairs) == (("jsonify", 2), ("a", 1), ("escape", 1))
    assert chosen_calls(pairs, top=10) == (("jsonify", 2), ("a", 1), ("escape", 1), ("quote", 1))
    assert chosen_calls([_pair("sibling", "x", "f(x)")]) == ()
