"""Where every stage of a run lives in its run dir: the one place that knows the layout.

The pipeline places its stages with it and the report (and its paired and per-round parts) finds
them with it, so the two can never disagree:

    RUN/config.yaml                          the resolved config
    RUN/seed-S/<arm>/eval/<bench slug>/      metrics.json, generations.jsonl, stage.json
    RUN/seed-S/<arm>/round-R/data/           trees.jsonl, pairs.jsonl, stage.json
    RUN/seed-S/<arm>/round-R/train/          metrics.jsonl, the trained model, stage.json
    RUN/seed-S/<arm>/budget.json             steps, tokens, pairs and wall time of the arm

`<arm>` is `base`, a method (`sft`, `selfplay`, `tsp`) or a variant name; `<bench slug>` is
`treeplay.eval.evaluate.bench_slug` of the bench name (`sec-eval:not-trained` ->
`sec-eval-not-trained`). Discovery (`seeds`, `arms`, `eval_dirs`, `rounds`) lists what is on disk,
in numeric order for seeds and rounds and by name for arms and benches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from treeplay.eval import bench_slug

CONFIG_FILE = "config.yaml"
BUDGET_FILE = "budget.json"
EVAL_DIR = "eval"
_SEED = re.compile(r"seed-(\d+)")
_ROUND = re.compile(r"round-(\d+)")

RoundPart = Literal["data", "train"]


def _numbered(parent: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    """The sub-directories of `parent` named like `pattern` (prefix + number), by number."""
    if not parent.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in parent.iterdir() if p.is_dir() and (m := pattern.fullmatch(p.name))]
    return sorted(found)


def _subdirs(parent: Path) -> list[Path]:
    return sorted(p for p in parent.iterdir() if p.is_dir()) if parent.is_dir() else []


@dataclass(frozen=True)
class RunLayout:
    """The paths of one run dir (nothing is created here)."""

    run_dir: Path

    # -- where a stage goes -------------------------------------------------------------------
    @property
    def config_file(self) -> Path:
        return self.run_dir / CONFIG_FILE

    def seed_dir(self, seed: int) -> Path:
        return self.run_dir / f"seed-{seed}"

    def arm_dir(self, seed: int, arm: str) -> Path:
        return self.seed_dir(seed) / arm

    def eval_dir(self, seed: int, arm: str, bench: str) -> Path:
        """The eval stage of `arm` on the bench named `bench` (not its slug)."""
        return self.arm_dir(seed, arm) / EVAL_DIR / bench_slug(bench)

    def round_dir(self, seed: int, arm: str, round_: int, part: RoundPart | None = None) -> Path:
        """Round `round_` of `arm`, or its data or train stage."""
        directory = self.arm_dir(seed, arm) / f"round-{round_}"
        return directory / part if part else directory

    def budget(self, seed: int, arm: str) -> Path:
        return self.arm_dir(seed, arm) / BUDGET_FILE

    @property
    def superseded_dir(self) -> Path:
        """Finished stages whose inputs changed are moved here (by old inputs hash), never deleted."""
        return self.run_dir / "superseded"

    # -- what is on disk ----------------------------------------------------------------------
    def seeds(self) -> list[int]:
        return [seed for seed, _ in _numbered(self.run_dir, _SEED)]

    def arms(self, seed: int) -> list[str]:
        return [p.name for p in _subdirs(self.seed_dir(seed))]

    def eval_dirs(self, seed: int, arm: str) -> list[Path]:
        """The bench directories of `arm` (named by slug; the bench name is in their records)."""
        return _subdirs(self.arm_dir(seed, arm) / EVAL_DIR)

    def rounds(self, seed: int, arm: str) -> list[int]:
        return [round_ for round_, _ in _numbered(self.arm_dir(seed, arm), _ROUND)]

    def found_evals(self) -> Iterator[tuple[int, str, Path]]:
        """(seed, arm, bench dir) of every eval directory on disk."""
        for seed in self.seeds():
            for arm in self.arms(seed):
                for directory in self.eval_dirs(seed, arm):
                    yield seed, arm, directory

    def found_rounds(self) -> Iterator[tuple[int, str, int]]:
        """(seed, arm, round) of every round directory on disk."""
        for seed in self.seeds():
            for arm in self.arms(seed):
                for round_ in self.rounds(seed, arm):
                    yield seed, arm, round_
