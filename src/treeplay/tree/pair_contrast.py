"""What a set of preference pairs contrasts besides security.

A preference pair teaches whatever separates its chosen from its rejected side. The oracle makes
sure security does; nothing makes sure it is the only thing. When the chosen side is the dataset's
human-written golden code (`golden-vs-branch`, `golden-vs-unparseable`, `sft`) and the rejected
side is the model's own sample, the pair also contrasts who wrote it: length, comment habits,
style. A model can lower its loss by learning those, and they move answers on every benchmark, not
only on security ones. These statistics let a reader see that confound per pair mode; they decide
nothing in training.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from treeplay.oracle.languages import HASH_COMMENT, try_normalise_language
from treeplay.tree.records import Pair

# pair modes whose chosen side is the task's golden (dataset) code, not a model sample
HUMAN_CHOSEN_MODES = frozenset({"golden-vs-branch", "golden-vs-unparseable", "sft"})


@dataclass(frozen=True)
class PairContrast:
    """One pair mode's contrasts; shares are fractions of the mode's pairs (None when undefined)."""

    mode: str
    pairs: int
    chosen_by_dataset: bool  # the chosen side is human-written golden code
    chosen_chars: float  # median characters of the chosen side
    rejected_chars: float | None  # median characters of the rejected side (None for `sft`)
    chosen_longer: float | None  # share of pairs whose chosen side has more characters than the rejected
    chosen_opens_with_comment: float
    rejected_opens_with_comment: float | None
    # the names called on the chosen side more often than on the rejected one: (name, net pairs), net =
    # pairs that call it only on the chosen side minus pairs that call it only on the rejected side;
    # the top `TOP_CALLS`, positive nets only (empty for `sft`, which has no rejected side)
    chosen_calls: tuple[tuple[str, int], ...] = ()


TOP_CALLS = 3
# `name(` where name is an identifier, optionally after a dot (`flask.jsonify(` counts as jsonify):
# every language here calls that way; keywords followed by a parenthesis are dropped
_CALL = re.compile(r"(?<![\w$])([A-Za-z_][A-Za-z0-9_]*)\s*\(")
_NOT_CALLS = frozenset({"if", "elif", "while", "for", "return", "and", "or", "not", "in", "with", "assert",
                        "switch", "catch", "sizeof", "typeof", "function", "def", "class", "lambda", "yield",
                        "except", "del", "await", "func"})  # fmt: skip


def opens_with_comment(text: str, language: str) -> bool:
    """True when the first non-blank line of `text` is a line or block comment (`#` for Python and
    Ruby; `//` or `/*` elsewhere). A docstring is not a comment here: it is code the golden sides
    carry and the model's samples rarely open with."""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped:
            prefixes = ("#",) if try_normalise_language(language) in HASH_COMMENT else ("//", "/*")
            return stripped.startswith(prefixes)
    return False


def called_names(text: str) -> set[str]:
    """The names `text` calls (`jsonify(...)`, `os.path.join(...)` -> join), keywords excluded."""
    return {name for name in _CALL.findall(text) if name not in _NOT_CALLS}


def chosen_calls(pairs: Sequence[Pair], top: int = TOP_CALLS) -> tuple[tuple[str, int], ...]:
    """The `top` names with the largest positive net count of pairs that call them only on the
    chosen side (ties by name): what the pairs teach to call besides what they teach to avoid."""
    net: Counter[str] = Counter()
    for pair in pairs:
        chosen, rejected = called_names(pair.chosen), called_names(pair.rejected)
        net.update(chosen - rejected)
        net.subtract(rejected - chosen)
    ranked = sorted(((name, count) for name, count in net.items() if count > 0), key=lambda kv: (-kv[1], kv[0]))
    return tuple(ranked[:top])


def contrast(mode: str, pairs: Sequence[Pair]) -> PairContrast:
    """The contrasts of pairs that all have pair mode `mode`."""
    if not pairs:
        raise ValueError(f"no pairs of mode {mode!r} to contrast")
    wrong = sorted({p.mode for p in pairs} - {mode})
    if wrong:
        raise ValueError(f"pairs of mode {wrong[0]!r} given as mode {mode!r}")
    n = len(pairs)
    # characters, not tokens: `sft` examples and older pair files carry no token ids, and one unit
    # must serve every row (branches are capped in tokens: `tree.max_new_tokens`)
    chosen = [len(p.chosen) for p in pairs]
    chosen_comment = sum(opens_with_comment(p.chosen, p.language) for p in pairs) / n
    if mode == "sft":  # no rejected side
        return PairContrast(mode, n, True, statistics.median(chosen), None, None, chosen_comment, None)
    rejected = [len(p.rejected) for p in pairs]
    return PairContrast(
        mode=mode,
        pairs=n,
        chosen_by_dataset=mode in HUMAN_CHOSEN_MODES,
        chosen_chars=statistics.median(chosen),
        rejected_chars=statistics.median(rejected),
        chosen_longer=sum(c > r for c, r in zip(chosen, rejected, strict=True)) / n,
        chosen_opens_with_comment=chosen_comment,
        rejected_opens_with_comment=sum(opens_with_comment(p.rejected, p.language) for p in pairs) / n,
        chosen_calls=chosen_calls(pairs),
    )


def contrast_by_mode(pairs: Iterable[Pair]) -> list[PairContrast]:
    """One `PairContrast` per pair mode present, in mode-name order."""
    by_mode: dict[str, list[Pair]] = defaultdict(list)
    for pair in pairs:
        by_mode[pair.mode].append(pair)
    return [contrast(mode, group) for mode, group in sorted(by_mode.items())]
