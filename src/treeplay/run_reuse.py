"""`treeplay run --reuse-from OTHER_RUN`: finished stages of another run dir instead of redoing them.

A stage's inputs hash names everything its result depends on and nothing about where the run
lives, so a finished stage of another run at the same place in the layout (`seed-0/base/eval/sallm`)
with the same hash is this run's stage, done. A run that changes only the learning rate, say,
reuses the base evaluations and the trees of the run it varies and pays only for training and
evaluation.

A reused stage is copied, never linked (the other run may be superseded or deleted later): into
`<stage dir>.reusing` first and renamed into place, so a kill mid-copy leaves no half stage that
looks done. Paths under the other run dir in its small JSON files (`stage.json`, the trained
model's records) are rewritten to this run dir, so nothing here loads the other run's files, and
`stage.json` gets `reused_from`. Generations and trees keep the model ids they were sampled with.
A train stage whose weights are not in the other run (restored from a bundle, which leaves them
out) is not reused when a stage still to run needs them: that stage would have no model to load.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from treeplay.run_bundle import MODEL_DIR, has_weights
from treeplay.stages import STAGE_FILE, PlannedStage, Selection, Stage, read_record

REUSED_FROM = "reused_from"  # stage.json: the other run's stage dir it was copied from
_REWRITTEN_MAX_BYTES = 1 << 20  # JSON files up to this size get their paths rewritten (records, not data)


@dataclasses.dataclass(frozen=True)
class Reuse:
    """One stage to copy: this run's stage, the other run dir and its finished stage dir."""

    stage: Stage
    source_run: Path
    source: Path


def find_reusable(planned: Sequence[PlannedStage], run_dir: Path, sources: Sequence[Path],
                  select: Selection | None = None) -> list[Reuse]:  # fmt: skip
    """The stages not done here (and selected by `--only/--seed`, when given) that a run in `sources`
    (the first that has it) finished with the same inputs hash. A train stage whose model has no weights there only when every stage of its
    arm still to run after it is reused too (none of them would load the model)."""
    planned = [p for p in planned if not select or select.selects(p.stage.arm, p.stage.seed)]
    found: dict[str, Reuse] = {}
    weightless: list[Reuse] = []
    for item in planned:
        if item.done:
            continue
        for source_run in sources:
            source = source_run / item.stage.directory.relative_to(run_dir)
            record = read_record(source / STAGE_FILE)
            if record is None or record.get("inputs_hash") != item.stage.inputs_hash:
                continue
            found[item.stage.name] = Reuse(item.stage, source_run, source)
            if item.stage.kind == "train" and not _model_is_there(record, source):
                weightless.append(found[item.stage.name])
            break
    for reuse in weightless:
        arm_dir = reuse.stage.directory.parent.parent
        later = [p.stage.name for p in planned if not p.done and arm_dir in p.stage.directory.parents
                 and p.stage.name != reuse.stage.name]  # fmt: skip
        if not all(name in found for name in later):
            del found[reuse.stage.name]
    return list(found.values())


def _model_is_there(record: dict[str, Any], source: Path) -> bool:
    """The other run's trained model (`<train stage>/final`) has its weights, or the stage trained nothing."""
    return "untrained" in record or has_weights(source / MODEL_DIR)


def copy_reused(reuses: Sequence[Reuse], run_dir: Path, say: Callable[[str], None] = print) -> int:
    """Copy each stage in (see the module doc); returns how many were copied."""
    for reuse in reuses:
        target = reuse.stage.directory
        staging = target.with_name(target.name + ".reusing")
        if staging.exists():
            shutil.rmtree(staging)
        shutil.copytree(reuse.source, staging, symlinks=True)
        for path in staging.rglob("*.json"):
            if path.stat().st_size <= _REWRITTEN_MAX_BYTES:
                rewrite_paths(path, reuse.source_run, run_dir)
        marker = staging / STAGE_FILE
        record = {**json.loads(marker.read_text(encoding="utf-8")), REUSED_FROM: str(reuse.source)}
        if reuse.stage.kind == "train" and "untrained" not in record:  # the model the next stages load
            record["final_model_dir"] = str(target / MODEL_DIR)
        marker.write_text(json.dumps(record, indent=2), encoding="utf-8")
        if target.exists():  # unfinished work of this run (no stage.json of these inputs): replaced
            shutil.rmtree(target)
        staging.rename(target)
        say(f"{reuse.stage.name}: reused from {reuse.source}")
    return len(reuses)


def rewrite_paths(path: Path, source_run: Path, run_dir: Path) -> None:
    """Every string in the JSON file that is a path under `source_run`, moved under `run_dir`."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return  # not a JSON record (left as copied)
    moved = _map_strings(data, lambda s: _moved(s, source_run, run_dir))
    if moved != data:
        path.write_text(json.dumps(moved, indent=2), encoding="utf-8")


def _map_strings(value: Any, change: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return change(value)
    if isinstance(value, list):
        return [_map_strings(v, change) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, change) for k, v in value.items()}
    return value


def _moved(value: str, source_run: Path, run_dir: Path) -> str:
    """`value` under `run_dir` when it is a path under `source_run` (however either was spelled:
    relative to the working directory or absolute), else `value` unchanged."""
    if "/" not in value:
        return value
    root = os.path.abspath(source_run)
    absolute = os.path.abspath(value)
    if absolute != root and not absolute.startswith(root + os.sep):
        return value
    return str(run_dir / os.path.relpath(absolute, root))  # the root itself: relpath "." -> run_dir
