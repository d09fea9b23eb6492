"""CWE helpers: normalisation and the equivalence classes used to decide `target_hit`."""

from __future__ import annotations

import re

_CWE_RE = re.compile(r"(?i)cwe[\s_-]*0*(\d+)")
_NUM_RE = re.compile(r"^\s*0*(\d+)\s*$")

# CWEs that name the same weakness at different abstraction levels; a finding of any member
# counts as hitting a task whose CWE is another member.
EQUIVALENT_GROUPS: tuple[frozenset[int], ...] = (
    frozenset({94, 95, 96}),
    frozenset({330, 331, 335, 338}),
    frozenset({326, 327, 328, 916, 759, 760}),
    frozenset({329, 1204}),
    frozenset({22, 23, 36, 73}),
    frozenset({77, 78, 88}),
    frozenset({79, 80, 83, 116}),
    frozenset({89, 564, 943}),
    frozenset({119, 120, 121, 122, 125, 131, 787, 788, 805, 806, 170, 193}),
    frozenset({190, 191, 680, 681}),
    frozenset({611, 776, 827}),
    frozenset({400, 1333, 730, 770}),
    frozenset({295, 297}),
    frozenset({798, 259, 321}),
    frozenset({732, 276, 281}),
    frozenset({134}),
    frozenset({676, 242}),
    frozenset({476, 690}),
)


def cwe_number(value: str | int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    match = _CWE_RE.search(value) or _NUM_RE.match(value)
    return int(match.group(1)) if match else None


def normalise(value: str | int | None) -> str | None:
    number = cwe_number(value)
    return None if number is None or number == 0 else f"CWE-{number}"


def equivalents(value: str | int) -> frozenset[int]:
    number = cwe_number(value)
    if number is None:
        return frozenset()
    for group in EQUIVALENT_GROUPS:
        if number in group:
            return group
    return frozenset({number})


def matches(finding_cwe: str | None, target_cwes: tuple[str, ...]) -> bool:
    number = cwe_number(finding_cwe)
    return number is not None and any(number in equivalents(t) for t in target_cwes)
