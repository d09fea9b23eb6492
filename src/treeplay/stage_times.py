"""How long the stages still to run will take, measured: the median wall time of the run's finished
stages of the same kind (an eval of the same bench, a train stage of the same method, a data stage
of the same method that samples, reuses or copies its trees). Used by `treeplay run --check` and by
the ETA a run prints; the constant tok/s of `run_check` is the fallback for kinds not run yet."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence

from treeplay.stages import PlannedStage, Stage

TimeKey = tuple[str, ...]


def stage_keys(planned: Sequence[PlannedStage], methods: Mapping[str, str]) -> list[TimeKey]:
    """The time key of each planned stage, in order. `methods`: arm name -> method (`base` has
    none). A data stage's key says where its trees come from: `golden` (SFT, nothing sampled),
    `copied` (same inputs as an earlier arm's), `reused` (other pairs from an earlier arm's trees)
    or `sampled`; a train stage with an earlier arm's inputs is `copied`."""
    hashes: set[str] = set()
    trees: set[str] = set()
    keys: list[TimeKey] = []
    for item in planned:
        stage = item.stage
        keys.append(_key(stage, methods.get(stage.arm, stage.arm), hashes, trees))
        hashes.add(stage.inputs_hash)
        trees |= {stage.samples_key} if stage.samples_key else set()
    return keys


def _key(stage: Stage, method: str, hashes: set[str], trees: set[str]) -> TimeKey:
    if stage.kind == "eval":
        return ("eval", stage.bench or "")
    if stage.kind == "train" and stage.inputs_hash in hashes:
        return ("train", method, "copied")  # same inputs as an earlier arm's: its model is copied
    if stage.kind != "data":
        return (str(stage.kind), method)
    if method == "sft":
        return ("data", method, "golden")
    if stage.inputs_hash in hashes:
        return ("data", method, "copied")
    return ("data", method, "reused" if stage.samples_key in trees else "sampled")


class StageTimes:
    """Median wall seconds per stage kind, from the finished stages of a plan (and any added later)."""

    def __init__(self, planned: Sequence[PlannedStage], methods: Mapping[str, str]) -> None:
        self.keys = {p.stage.name: key for p, key in zip(planned, stage_keys(planned, methods), strict=True)}
        self.walls: dict[TimeKey, list[float]] = {}
        for item in planned:
            record = item.stage.done_record() if item.done else None
            if record is not None and isinstance(record.get("wall_s"), int | float):
                self.add(item.stage, float(record["wall_s"]))

    def add(self, stage: Stage, wall_s: float) -> None:
        self.walls.setdefault(self.keys[stage.name], []).append(wall_s)

    def expected_s(self, stage: Stage) -> float | None:
        """The median wall time of the finished stages of this stage's kind, or None (none finished)."""
        walls = self.walls.get(self.keys[stage.name])
        return statistics.median(walls) if walls else None

    def remaining(self, stages: Sequence[Stage]) -> tuple[float, list[Stage]]:
        """(expected seconds of the stages with a measured kind, the stages without one)."""
        expected = [(stage, self.expected_s(stage)) for stage in stages]
        return sum(s for _, s in expected if s is not None), [stage for stage, s in expected if s is None]
