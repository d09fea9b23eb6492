"""Resumable, hashed stages: the machinery under `treeplay run`, without the algorithm.

A `Stage` is one unit of work with its own directory and the hash of its inputs (`digest`). When
it finishes, `run_stage` writes `stage.json` (the hash and what the stage returned); a rerun whose
hash matches skips the stage, a stage dir without `stage.json` is resumed (trees, evaluations and
training are resumable themselves), and a stage dir built from other inputs is removed first.

The algorithm is a generator of steps (`Steps`): it yields a stage and receives its record, and
yields an `ArmBudget` to have it written. `execute` runs the steps (printing progress and an ETA
from the work still to do); `plan` walks the same steps without running anything: done stages
give their record, the others a placeholder (e.g. a not-yet-trained model), so the plan is exact.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import shutil
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from rich.console import Console

from treeplay.jsonl import write_text_atomic
from treeplay.peak_rss import PeakRss

if TYPE_CHECKING:
    from treeplay.stage_times import StageTimes

STAGE_FILE = "stage.json"
INPUTS_FILE = "inputs.json"
PEAK_RSS = "peak_rss_mb"  # stage.json: this process's peak resident memory during the stage, in MB
StageKind = Literal["eval", "data", "train"]


class StageError(RuntimeError):
    """A stage that ended without producing what the next stage needs (e.g. zero training pairs)."""


def digest(*parts: Any) -> str:
    """The inputs hash of a stage (16 hex digits). Changing what goes in redoes every run's stage."""
    payload = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dataclasses.dataclass
class Stage:
    """One unit of pipeline work with its own directory and an input hash."""

    name: str  # human label, e.g. "seed 0 / tsp / round 1 / train"
    directory: Path
    inputs_hash: str
    run: Callable[[], dict[str, Any]]  # does the work (resumably); returns what to record
    kind: StageKind | None = None
    arm: str = ""
    seed: int | None = None
    bench: str | None = None  # eval stages: the bench name
    placeholder: dict[str, Any] = dataclasses.field(default_factory=dict)  # the record a plan assumes
    # data stages: the hash of what their sampled trees depend on; a later stage with the same key
    # reuses the first one's trees instead of sampling (None: not a sampling stage)
    samples_key: str | None = None

    def done_record(self) -> dict[str, Any] | None:
        record = read_record(self.directory / STAGE_FILE)
        return record if record is not None and record.get("inputs_hash") == self.inputs_hash else None


def read_record(path: Path) -> dict[str, Any] | None:
    """A stage's `stage.json` or `inputs.json`, or None when it is missing or not JSON."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


@dataclasses.dataclass(frozen=True)
class ArmBudget:
    """What one arm cost (steps, tokens, pairs, wall time), written to its `budget.json`."""

    path: Path
    record: dict[str, Any]
    seed: int | None = None
    arm: str = ""

    def write(self) -> None:
        self.path.write_text(json.dumps(self.record, indent=2))


@dataclasses.dataclass(frozen=True)
class Selection:
    """`treeplay run --only ARM --seed S`: the stages to run (an empty set selects every arm or
    seed). The others are walked, not run, so hashes and tree reuse stay as in a full run."""

    arms: frozenset[str] = frozenset()
    seeds: frozenset[int] = frozenset()

    @classmethod
    def of(cls, arms: Sequence[str] | None = None, seeds: Sequence[int] | None = None) -> Selection:
        return cls(frozenset(arms or ()), frozenset(seeds or ()))

    def __bool__(self) -> bool:
        return bool(self.arms or self.seeds)

    def selects(self, arm: str, seed: int | None) -> bool:
        return (not self.arms or arm in self.arms) and (not self.seeds or seed in self.seeds)

    def label(self) -> str:
        """As typed on the command line, e.g. `--only sft, tsp --seed 0`."""
        parts = [f"--only {', '.join(sorted(self.arms))}"] if self.arms else []
        parts += [f"--seed {', '.join(map(str, sorted(self.seeds)))}"] if self.seeds else []
        return " ".join(parts)


Step = Stage | ArmBudget
Steps = Generator[Step, dict[str, Any], None]  # yields steps, receives each stage's record


def superseded_path(stage: Stage, archive: Path, previous_hash: str) -> Path:
    """Where a finished stage's results go when other inputs supersede them:
    `<archive>/<old inputs hash>/<the stage dir relative to the run dir>`; when that is taken (the
    same inputs were superseded before, and a rerun of them need not repeat bit for bit), the first
    free `<archive>/<old inputs hash>.2/...`, `.3`, ...: no copy replaces another."""
    try:
        relative = stage.directory.relative_to(archive.parent)
    except ValueError:
        relative = Path(stage.directory.name)
    target, copy = archive / previous_hash / relative, 1
    while target.exists():
        copy += 1
        target = archive / f"{previous_hash}.{copy}" / relative
    return target


def _clear_if_stale(stage: Stage, archive: Path | None) -> Path | None:
    """A stage dir built from other inputs is cleared, so no stale file is mistaken for progress.
    A finished one is moved to `archive` (results are never deleted; None: removed, for callers
    without a run dir); unfinished partial output of other inputs is removed. Returns where a
    finished stage went."""
    marker = stage.directory / STAGE_FILE
    if marker.exists():
        if archive is None:
            shutil.rmtree(stage.directory)
            return None
        previous = _stored_hash(marker) or "unknown"
        target = superseded_path(stage, archive, previous)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(stage.directory), str(target))
        return target
    inputs = stage.directory / INPUTS_FILE
    if inputs.exists() and _stored_hash(inputs) != stage.inputs_hash:
        shutil.rmtree(stage.directory)
    return None


def _stored_hash(path: Path) -> str | None:
    value = (read_record(path) or {}).get("inputs_hash")
    return str(value) if value else None


def run_stage(stage: Stage, archive: Path | None = None) -> dict[str, Any]:
    """The stage's record: from `stage.json` when its hash matches, else by running it now (a
    finished stage of other inputs is first moved to `archive`, see `_clear_if_stale`)."""
    record = stage.done_record()
    if record is not None:
        return record
    _clear_if_stale(stage, archive)
    stage.directory.mkdir(parents=True, exist_ok=True)
    (stage.directory / INPUTS_FILE).write_text(json.dumps({"inputs_hash": stage.inputs_hash}), encoding="utf-8")
    started = time.monotonic()
    with PeakRss() as memory:
        result = stage.run()
    record = {"inputs_hash": stage.inputs_hash, "wall_s": round(time.monotonic() - started, 2), **result}
    record.pop(PEAK_RSS, None)  # a record copied from another arm's stage: its peak is not this stage's
    if memory.peak_mb is not None:  # this process's peak resident memory during this stage (`treeplay.peak_rss`)
        record[PEAK_RSS] = memory.peak_mb
    write_text_atomic(stage.directory / STAGE_FILE, json.dumps(record, indent=2, default=str))
    return record


def walk(steps: Steps, on_stage: Callable[[Stage], dict[str, Any]], on_budget: Callable[[ArmBudget], None]) -> None:
    """Drive the algorithm: every stage goes to `on_stage` (its record is sent back), every budget
    to `on_budget`."""
    reply: dict[str, Any] | None = None
    while True:
        try:
            step = steps.send(reply) if reply is not None else next(steps)
        except StopIteration:
            return
        if isinstance(step, Stage):
            reply = on_stage(step)
        else:
            on_budget(step)
            reply = {}


# ---- planning ---------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PlannedStage:
    stage: Stage
    done: bool  # stage.json matches the inputs: the run skips it


def plan(steps: Steps) -> list[PlannedStage]:
    """Every stage the steps would run, in order, and whether it is done; nothing runs or is written."""
    planned: list[PlannedStage] = []

    def visit(stage: Stage) -> dict[str, Any]:
        record = stage.done_record()
        planned.append(PlannedStage(stage, record is not None))
        return record if record is not None else dict(stage.placeholder)

    walk(steps, visit, lambda budget: None)
    return planned


def superseded_note(planned: Sequence[PlannedStage], fingerprint: str, archive: Path) -> str | None:
    """Why finished stages will be redone: how many have other inputs now, and how many of them were
    judged by another oracle (their record's `oracle` fingerprint), or None when none will."""
    records = []
    for item in planned:
        marker = item.stage.directory / STAGE_FILE
        if not item.done and marker.exists():
            records.append(read_record(marker) or {})
    if not records:
        return None
    note = (f"{len(records)} finished stage(s) have other inputs now and will be redone; their results move to "
            f"{archive}/<old inputs hash>/ (nothing is deleted)")  # fmt: skip
    others = sorted({str(r["oracle"]) for r in records if r.get("oracle") not in (None, fingerprint)})
    if others:
        judged = sum(r.get("oracle") not in (None, fingerprint) for r in records)
        note += (f"; {judged} of them were judged by another oracle (fingerprint {', '.join(others)}; installed "
                 f"{fingerprint}): its rules, settings or analyzers changed; if the change keeps every verdict, "
                 "`treeplay rekey CONFIG` keeps them instead (it re-judges their stored programs first)")  # fmt: skip
    return note


# ---- progress ---------------------------------------------------------------------------------


@contextlib.contextmanager
def progress_bar(label: str, console: Console) -> Iterator[Callable[[int, int], None]]:
    """A progress bar (`treeplay.progress.Progress`) fed with (done, total) callbacks."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from treeplay.progress import Progress

    with Progress(
        TextColumn(f"[bold]{label}[/]"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console,
    ) as bar:
        handle = bar.add_task(label, total=None)

        def advance(done: int, total: int) -> None:
            bar.update(handle, completed=done, total=total)

        yield advance


_SHOWN = ("summary", "pairs", "branches", "steps", "tasks", "untrained")


class StageClock:
    """Runs stages, printing each with its position, the elapsed time and an ETA: the stages still
    to run at the median time of the finished stages of their kind (`times`), and those of a kind
    not timed yet at the mean time of the stages run so far (done ones cost nothing)."""

    def __init__(self, planned: list[PlannedStage], console: Console, archive: Path | None = None,
                 times: StageTimes | None = None) -> None:  # fmt: skip
        self.archive = archive  # where finished stages superseded by other inputs are moved
        self.total = len(planned)
        self.pending = {p.stage.name: p.stage for p in planned if not p.done}
        self.to_run = len(self.pending)
        self.times = times
        self.console = console
        self.position = 0
        self.started = time.monotonic()
        self.worked_s = 0.0
        self.worked = 0

    def run(self, stage: Stage) -> dict[str, Any]:
        self.position += 1
        cached = stage.done_record()
        label = f"[{self.position}/{self.total}] {stage.name}"
        if cached is not None:
            self.console.print(f"[dim]{label}: done earlier, skipped[/]")
            return cached
        self.console.print(f"[bold cyan]{label}[/] {self._eta()}")
        t0 = time.monotonic()
        self.pending.pop(stage.name, None)
        record = run_stage(stage, self.archive)
        self.worked_s += time.monotonic() - t0
        self.worked += 1
        if self.times is not None:
            self.times.add(stage, time.monotonic() - t0)
        shown = {k: v for k, v in record.items() if k in _SHOWN}
        memory = f", peak RSS {record[PEAK_RSS] / 1024:.1f} GB" if PEAK_RSS in record else ""
        self.console.print(f"  done in {time.monotonic() - t0:.0f}s{memory} {json.dumps(shown, default=str)}")
        return record

    def _eta(self) -> str:
        """Elapsed time and the ETA of this stage and the ones after it."""
        elapsed = time.monotonic() - self.started
        left = list(self.pending.values())
        measured, untimed = self.times.remaining(left) if self.times is not None else (0.0, left)
        if untimed and not self.worked:
            timed = f", ~{measured / 60:.0f} min for the {len(left) - len(untimed)} timed" if measured else ""
            return f"(elapsed {elapsed:.0f}s, {self.to_run} stage(s) to run{timed})"
        remaining = measured + len(untimed) * (self.worked_s / self.worked if self.worked else 0.0)
        return f"(elapsed {elapsed:.0f}s, ETA ~{remaining / 60:.0f} min)"
