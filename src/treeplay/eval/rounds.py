"""Per-round figures of a multi-round run: what the opponent sampled, the pairs, the final rewards,
and which arm's evaluations are of each round's model (`round_models`).

For every arm and round (summed over seeds): the branches the round's opponent sampled by oracle
label (from `round-R/data/trees.jsonl`, or the `branches` label counts of `round-R/data/stage.json`
when the trees file is absent), the share of them the oracle verified as vulnerable, the training
pairs (`stage.json` `pairs`, else the lines of `pairs.jsonl`), and the last logged preference
accuracy and reward margin of `round-R/train/metrics.jsonl` (mean over seeds).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treeplay.run_layout import RunLayout
from treeplay.tree.records import Tree

_ACCURACY_KEYS = ("pref_accuracy", "rewards/accuracy")
_MARGIN_KEYS = ("reward_margin", "rewards/margin")

TreeItem = tuple[int, str, int, Tree]  # seed, arm, round, tree
LogKey = tuple[int, str, int]  # seed, arm, round


@dataclass
class RoundRow:
    """One arm's round, summed over the seeds that ran it."""

    arm: str
    round: int
    seeds: list[int] = field(default_factory=list)
    labels: Counter[str] = field(default_factory=Counter)
    pairs: int | None = None
    accuracies: list[float] = field(default_factory=list)
    margins: list[float] = field(default_factory=list)

    @property
    def branches(self) -> int:
        return sum(self.labels.values())

    @property
    def vulnerable_share(self) -> float | None:
        """Oracle-verified vulnerable branches / all branches the opponent sampled (None: no branch)."""
        return self.labels["vulnerable"] / self.branches if self.branches else None

    @property
    def pref_accuracy(self) -> float | None:
        return sum(self.accuracies) / len(self.accuracies) if self.accuracies else None

    @property
    def reward_margin(self) -> float | None:
        return sum(self.margins) / len(self.margins) if self.margins else None


def _stage_record(data_dir: Path) -> dict[str, Any]:
    path = data_dir / "stage.json"
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path}: expected a JSON object")
    nested = record.get("record")
    return {**nested, **record} if isinstance(nested, dict) else record


def _stage_labels(path: Path, record: Mapping[str, Any]) -> Counter[str]:
    labels = record.get("branches")
    if labels is None:
        return Counter()
    if not isinstance(labels, dict) or not all(isinstance(v, int) for v in labels.values()):
        raise ValueError(f"{path / 'stage.json'}: field 'branches' must map labels to counts")
    return Counter({str(k): int(v) for k, v in labels.items()})


def _pairs(data_dir: Path, record: Mapping[str, Any]) -> int | None:
    if isinstance(record.get("pairs"), int):
        return int(record["pairs"])
    path = data_dir / "pairs.jsonl"
    if path.is_file():
        with path.open(encoding="utf-8") as fh:
            return sum(1 for line in fh if line.strip())
    return None


def _last(rows: Iterable[Mapping[str, Any]], keys: tuple[str, ...]) -> float | None:
    value = None
    for row in rows:
        found = next((row[k] for k in keys if isinstance(row.get(k), int | float)), None)
        value = float(found) if found is not None else value
    return value


def round_dirs(run_dir: Path) -> list[tuple[int, str, int, Path]]:
    """(seed, arm, round, directory) of every RUN/seed-S/<arm>/round-R/."""
    layout = RunLayout(run_dir)
    return [(seed, arm, round_, layout.round_dir(seed, arm, round_)) for seed, arm, round_ in layout.found_rounds()]


def round_rows(
    run_dir: Path | str, trees: Iterable[TreeItem], train_logs: Mapping[LogKey, list[dict[str, Any]]]
) -> list[RoundRow]:
    """Per arm and round rows (arms in first-seen order, rounds ascending); trees and logs as the
    report already read them (`RunData.trees`, `RunData.train_logs`)."""
    tree_labels: dict[LogKey, Counter[str]] = defaultdict(Counter)
    for seed, arm, round_no, tree in trees:
        tree_labels[(seed, arm, round_no)].update(b.label for b in tree.branches)
    rows: dict[tuple[str, int], RoundRow] = {}
    for seed, arm, round_no, directory in round_dirs(Path(run_dir)):
        row = rows.setdefault((arm, round_no), RoundRow(arm, round_no))
        row.seeds.append(seed)
        record = _stage_record(directory / "data")
        has_trees = (directory / "data" / "trees.jsonl").is_file()
        row.labels.update(
            tree_labels[(seed, arm, round_no)] if has_trees else _stage_labels(directory / "data", record)
        )
        pairs = _pairs(directory / "data", record)
        if pairs is not None:
            row.pairs = (row.pairs or 0) + pairs
        log = train_logs.get((seed, arm, round_no)) or []
        if (accuracy := _last(log, _ACCURACY_KEYS)) is not None:
            row.accuracies.append(accuracy)
        if (margin := _last(log, _MARGIN_KEYS)) is not None:
            row.margins.append(margin)
    order = list(dict.fromkeys(arm for arm, _ in rows))
    return sorted(rows.values(), key=lambda r: (order.index(r.arm), r.round))


def _train_hash(round_dir: Path) -> str | None:
    record = _stage_record(round_dir / "train")
    value = record.get("inputs_hash")
    return value if isinstance(value, str) else None


def round_models(run_dir: Path | str) -> dict[LogKey, str]:
    """(seed, arm, round) -> the arm whose evaluations are of that round's trained model, for every
    round of the arms with two or more rounds: the arm itself for its last round (its evaluations are
    of its final model); for an earlier round, the arm of the same seed whose last round trained a
    model of the same train inputs hash, so the same model (e.g. `tsp` for round 1 of `tsp-2rounds`,
    whose round 1 is copied from it). A round no evaluated arm trained is left out."""
    dirs = round_dirs(Path(run_dir))
    last: dict[tuple[int, str], int] = {}
    for seed, arm, round_no, _ in dirs:
        last[(seed, arm)] = max(round_no, last.get((seed, arm), 0))
    hashes = {(seed, arm, round_no): _train_hash(directory) for seed, arm, round_no, directory in dirs}
    final_arm = {(seed, hashes[(seed, arm, n)]): arm for (seed, arm), n in last.items() if hashes[(seed, arm, n)]}
    models: dict[LogKey, str] = {}
    for seed, arm, round_no, _ in dirs:
        if last[(seed, arm)] < 2:
            continue
        if round_no == last[(seed, arm)]:
            models[(seed, arm, round_no)] = arm
        elif (owner := final_arm.get((seed, hashes[(seed, arm, round_no)]))) is not None:
            models[(seed, arm, round_no)] = owner
    return models
