"""`treeplay rekey CONFIG`: after an oracle change meant to leave every verdict as it was (e.g. a
speed-only prefilter in a rule file), keep the finished stages of a run instead of redoing them.

Every data and eval stage hashes the oracle fingerprint, so any change to the oracle's rule files
makes every finished stage stale. For each planned stage, in plan order:

1. done (its `stage.json` hash is the current one): nothing to do;
2. finished but stale: re-keyable only when its stored hash is the hash recomputed with the oracle
   fingerprint its record carries (`"oracle"`) and with the hashes its upstream stages had when it
   ran (a train stage hashes its data stage's and its model's hashes; a data or eval stage its
   model's); an upstream stage must itself be done or re-keyed, else this one is redone too. A
   stage whose other inputs changed (config, tasks, ...) is not re-keyable and is said so;
3. every stored program of a re-keyable data or eval stage is judged again by the installed oracle
   (`treeplay.rekey_programs`) and compared with the stored verdict; only when none differs are its
   `inputs.json` and `stage.json` rewritten (each atomically, inputs.json first) to the current
   hash and oracle fingerprint, with a `rekeyed` entry (old/new hash and fingerprint) in stage.json.
   Train stages have nothing to judge: they follow their re-keyed upstream.

Nothing is ever deleted; an audit log `rekey-<UTC time>.json` in the run dir lists every stage that
was not done with what happened to it (rewritten after each stage, so an interrupted rekey leaves a
log of what it did; rerunning continues: the rewritten stages are done, and the `rekeyed` entries
keep the hashes their downstream stages were made with). `dry_run` judges and reports, writes nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from treeplay.jsonl import write_text_atomic
from treeplay.pipeline import Pipeline
from treeplay.pipeline_stages import oracle_fingerprint
from treeplay.rekey_lineage import Lineage, LineageBuilder
from treeplay.rekey_programs import (
    Difference,
    Judgements,
    ProgramsError,
    StoredProgram,
    generation_programs,
    tree_programs,
)
from treeplay.run_config import RunConfig, data_root, load_train_tasks
from treeplay.run_lock import RunDirBusy, hold_run_dir
from treeplay.stages import INPUTS_FILE, STAGE_FILE, Stage, read_record, walk

# what happened to a stage that was not done
UNFINISHED = "not finished"  # no stage.json: `treeplay run` runs it (nothing to re-key)
UPSTREAM = "upstream redone"  # a stage it depends on will be redone: so will it
OTHER_INPUTS = "other inputs"  # its hash differs by more than the oracle fingerprint
NOT_COMPARED = "not compared"  # its stored programs could not be read: never re-keyed
DIFFERS = "verdicts differ"  # the installed oracle judges some stored program otherwise
CANDIDATE = "re-keyable"  # (the scan, before judging) stale only by the oracle
REKEYED = "re-keyed"
WOULD_REKEY = "would be re-keyed"  # dry run
KEPT = (REKEYED, WOULD_REKEY, CANDIDATE)  # outcomes whose stage counts as done afterwards


SHOWN_DIFFERENCES = 10  # per stage on the console (the log has all)


class RekeyError(RuntimeError):
    """Rekeying cannot start or go on (unknown run dir, a record without an oracle fingerprint...)."""


@dataclass
class StageOutcome:
    name: str
    directory: Path
    kind: str
    outcome: str
    new_hash: str
    old_hash: str | None = None
    old_oracle: str | None = None  # the fingerprint the stage was judged with (data and eval)
    programs: int = 0  # stored programs re-judged
    differences: list[Difference] = field(default_factory=list)
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        record = dataclasses.asdict(self)
        record["directory"] = str(self.directory)
        record["differences"] = [d.to_json() for d in self.differences]
        return record


@dataclass
class RekeyResult:
    new_oracle: str
    outcomes: list[StageOutcome]  # the stages that were not done, in plan order
    done: int  # stages done before
    total: int
    judged: int  # distinct programs judged
    judge_s: float
    log: Path | None  # None: dry run (nothing written)

    def count(self, *outcomes: str) -> int:
        return sum(o.outcome in outcomes for o in self.outcomes)

    @property
    def must_redo(self) -> list[StageOutcome]:
        return [o for o in self.outcomes if o.outcome not in KEPT]


@dataclass
class _Ledger:
    """Per stage directory: the hashes its content was made under (the current one, re-keyed
    ones), and which stages will be redone. By directory, not hash: an arm that copied another
    arm's data stage has its hash but not its fate."""

    known: dict[Path, set[str]] = field(default_factory=dict)
    redone: dict[Path, str] = field(default_factory=dict)  # directory -> stage name

    def options(self, upstream: str, source: Path | None) -> set[str]:
        if source is None:  # not a stage's (the base model): as it is
            return {upstream}
        return self.known.get(source, {upstream})


def _history(record: dict[str, Any]) -> set[str]:
    """The hashes a stage had before it was re-keyed (its `rekeyed` entries)."""
    return {str(e["from_hash"]) for e in record.get("rekeyed") or [] if isinstance(e, dict) and e.get("from_hash")}


class Rekey:
    """Re-keys the stages of one run dir; `scan` then `run` (see the module docstring)."""

    def __init__(self, config: RunConfig, run_dir: Path, *, say: Callable[[str], None] = print,
                 dry_run: bool = False, assume_oracle: str | None = None, oracle: Any = None,
                 source: str = "config") -> None:  # fmt: skip
        if not run_dir.is_dir():
            raise RekeyError(f"run dir {run_dir} does not exist (give the one `treeplay run` wrote with --run-dir)")
        self.config, self.run_dir, self.say = config, run_dir, say
        self.dry_run, self.assume_oracle = dry_run, assume_oracle
        self.new = oracle_fingerprint()
        self.oracle = oracle
        try:
            self.train = load_train_tasks(config)
        except (OSError, ValueError) as exc:
            raise RekeyError(f"{source}: field train_tasks: {exc}") from None
        self.tasks_by_id = {t.id: t for t in self.train}
        self.programs: dict[Path, list[StoredProgram]] = {}
        self.bench_tasks: dict[str, Any] = {}
        self.judgements = Judgements()
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        self.log_path = run_dir / f"rekey-{stamp}.json"
        self.run_oracles = self._recorded_oracles()

    # -- walking the plan -----------------------------------------------------------------------
    def _walk(self, visit: Callable[[Stage, Lineage], dict[str, Any]]) -> None:
        pipeline = Pipeline(self.config, self.run_dir, fingerprint=self.new, train_tasks=self.train)
        plain = pipeline.stages
        builder = LineageBuilder(self.config, pipeline.layout, self.train, data_root=plain.data_root,
                                 console=plain.console, fingerprint=self.new)  # fmt: skip
        lineage = builder.record_lineage()
        pipeline.stages = builder
        walk(pipeline.steps(), lambda stage: visit(stage, lineage[stage.directory]), lambda budget: None)

    def _recorded_oracles(self) -> set[str]:
        """The oracle fingerprints the run's stage records carry (for records that carry none)."""
        found: set[str] = set()

        def visit(stage: Stage, lineage: Lineage) -> dict[str, Any]:
            record = read_record(stage.directory / STAGE_FILE) or {}
            found.update([str(record["oracle"])] if record.get("oracle") else [])
            return dict(stage.placeholder)

        self._walk(visit)
        return found

    def _old_oracles(self, stage: Stage, record: dict[str, Any], lineage: Lineage) -> set[str] | str:
        """The fingerprints the stage may have been hashed with, or the error why none is known."""
        if not lineage.judged:
            return {""}  # not in a train stage's hash
        if record.get("oracle"):
            return {str(record["oracle"])}
        if self.assume_oracle:
            return {self.assume_oracle}
        if stage.kind == "data" and "trees" not in record and self.run_oracles:
            return self.run_oracles  # judged nothing (SFT): any oracle the run's other stages name
        return (f"{stage.directory / STAGE_FILE}: field 'oracle' missing: this record was written before stage "
                "records carried the oracle fingerprint, so which oracle judged the stage is unknown and it "
                "cannot be re-keyed automatically; `treeplay run` will redo it, or pass the fingerprint it was "
                "judged with (--assume-oracle HEX, e.g. from an earlier rekey log) to have it checked and re-keyed")

    def classify(self, stage: Stage, lineage: Lineage, ledger: _Ledger, errors: list[str]) -> StageOutcome | None:
        """None when the stage is done; else what it is before any judging (CANDIDATE: re-keyable)."""
        record = read_record(stage.directory / STAGE_FILE)
        outcome = StageOutcome(stage.name, stage.directory, str(stage.kind), UNFINISHED, stage.inputs_hash)
        if record is not None and record.get("inputs_hash") == stage.inputs_hash:
            ledger.known[stage.directory] = {stage.inputs_hash, *_history(record)}
            return None
        if record is None:
            outcome.note = "no stage.json: `treeplay run` runs it"
            return outcome
        outcome.old_hash = str(record.get("inputs_hash"))
        blocked = [ledger.redone[d] for d in lineage.sources if d is not None and d in ledger.redone]
        if blocked:
            outcome.outcome, outcome.note = UPSTREAM, f"{blocked[0]} will be redone"
            return outcome
        oracles = self._old_oracles(stage, record, lineage)
        if isinstance(oracles, str):
            errors.append(oracles)
            outcome.outcome, outcome.note = NOT_COMPARED, "no oracle fingerprint in its record"
            return outcome
        options = [sorted(ledger.options(u, d)) for u, d in zip(lineage.upstream, lineage.sources, strict=True)]
        combos = list(itertools.product(*options))
        matched = [fp for fp in sorted(oracles) if any(lineage.rehash(fp, c) == outcome.old_hash for c in combos)]
        if not matched:
            outcome.outcome = OTHER_INPUTS
            outcome.note = "its inputs changed beyond the oracle fingerprint (config, tasks or upstream): not re-keyed"
            return outcome
        outcome.old_oracle = matched[0] or None
        outcome.outcome = CANDIDATE
        try:
            outcome.programs = len(self.stage_programs(stage, record))
        except ProgramsError as exc:
            outcome.outcome, outcome.note = NOT_COMPARED, f"its stored verdicts cannot be compared: {exc}"
        return outcome

    # -- the stored programs ----------------------------------------------------------------------
    def stage_programs(self, stage: Stage, record: dict[str, Any]) -> list[StoredProgram]:
        if stage.directory not in self.programs:
            self.programs[stage.directory] = self._read_programs(stage, record)
        return self.programs[stage.directory]

    def _read_programs(self, stage: Stage, record: dict[str, Any]) -> list[StoredProgram]:
        if stage.kind == "train":
            return []
        if stage.kind == "data":
            trees = stage.directory / "trees.jsonl"
            if trees.is_file():
                return tree_programs(trees, self.tasks_by_id)
            if "trees" in record:
                raise ProgramsError(f"{trees}: missing (the record says the stage built {record['trees']} trees)")
            return []  # SFT: golden paths, nothing judged
        path = stage.directory / "generations.jsonl"
        if not path.is_file():
            raise ProgramsError(f"{path}: missing")
        return generation_programs(path, self._bench_tasks(str(stage.bench)))

    def _bench_tasks(self, bench: str) -> Any:
        if bench not in self.bench_tasks:
            from treeplay.eval.evaluate import resolve_bench

            section = self.config.eval
            limit = section.limits.get(bench, section.limit)
            try:
                self.bench_tasks[bench] = resolve_bench(bench, data_root(self.config), limit=limit)
            except (OSError, ValueError, RuntimeError) as exc:
                raise ProgramsError(f"bench {bench!r}: {exc}") from None
        return self.bench_tasks[bench]

    # -- the two passes -------------------------------------------------------------------------
    def scan(self) -> tuple[list[StageOutcome], int]:
        """Classify every stage without judging (re-keyable ones assumed to keep their verdicts);
        the not-done stages and the count of done ones. RekeyError for records without a fingerprint."""
        ledger, errors, total = _Ledger(), list[str](), 0
        outcomes: list[StageOutcome] = []

        def visit(stage: Stage, lineage: Lineage) -> dict[str, Any]:
            nonlocal total
            total += 1
            outcome = self.classify(stage, lineage, ledger, errors)
            if outcome is not None:
                outcomes.append(outcome)
                self._settle(stage, outcome, ledger)
            return read_record(stage.directory / STAGE_FILE) or dict(stage.placeholder)

        self._walk(visit)
        if errors:
            raise RekeyError("cannot re-key this run dir:\n" + "\n".join(f"  - {e}" for e in errors))
        return outcomes, total - len(outcomes)

    def _settle(self, stage: Stage, outcome: StageOutcome, ledger: _Ledger) -> None:
        if outcome.outcome in KEPT:
            ledger.known[stage.directory] = {stage.inputs_hash, str(outcome.old_hash), *self._old_history(stage)}
        else:
            ledger.redone[stage.directory] = stage.name

    @staticmethod
    def _old_history(stage: Stage) -> set[str]:
        return _history(read_record(stage.directory / STAGE_FILE) or {})

    def run(self) -> RekeyResult:
        """Scan, judge and re-key (holding the run dir's lock unless it is a dry run)."""
        if self.dry_run:
            return self._rekey()
        try:
            with hold_run_dir(self.run_dir, "treeplay rekey"):
                return self._rekey()
        except RunDirBusy as exc:
            raise RekeyError(str(exc)) from None

    def _rekey(self) -> RekeyResult:
        scanned, done = self.scan()
        candidates = [o for o in scanned if o.outcome == CANDIDATE]
        self.say(f"{self.run_dir}: {done} of {done + len(scanned)} stages done; {len(candidates)} stale only by the "
                 f"oracle fingerprint (installed {self.new}), {len(scanned) - len(candidates)} not re-keyable")  # fmt: skip
        programs = [p for o in candidates for p in self.programs.get(o.directory, [])]
        if programs:
            distinct = len({p.key() for p in programs})
            self.say(f"judging {len(programs)} stored programs ({distinct} distinct) with the installed oracle")
            self._judge(programs)
        outcomes = self._apply(len(scanned))
        result = RekeyResult(self.new, outcomes, done, done + len(outcomes), len(self.judgements.verdicts),
                             round(self.judgements.seconds, 1), None if self.dry_run or not outcomes else self.log_path)  # fmt: skip
        self._write_log(result, finished=True)
        return result

    def _judge(self, programs: list[StoredProgram]) -> None:
        from treeplay.oracle.core import OracleUnavailableError

        try:
            self.judgements.judge(self._oracle(), programs, self._progress)
        except OracleUnavailableError as exc:  # no verdict to compare: nothing is re-keyed
            raise RekeyError(f"oracle: {exc}") from None

    def _progress(self, judged: int, total: int, seconds: float) -> None:
        self.say(f"  judged {judged}/{total} programs in {seconds:.0f}s")

    def _oracle(self) -> Any:
        if self.oracle is None:
            from treeplay.oracle import Oracle, default_oracle

            self.oracle = Oracle(dataclasses.replace(default_oracle().config, use_cache=False))
        return self.oracle

    def _apply(self, stale: int) -> list[StageOutcome]:
        """The second pass: compare each re-keyable stage's verdicts, rewrite it when none differs;
        `stale`: the stages not done (numbered k/stale in the progress)."""
        ledger, position = _Ledger(), 0
        outcomes: list[StageOutcome] = []

        def visit(stage: Stage, lineage: Lineage) -> dict[str, Any]:
            nonlocal position
            outcome = self.classify(stage, lineage, ledger, [])
            if outcome is None:
                return read_record(stage.directory / STAGE_FILE) or dict(stage.placeholder)
            position += 1
            if outcome.outcome == CANDIDATE:
                self._decide(stage, outcome, lineage)
                self.say(f"[{position}/{stale}] {stage.name}: {outcome.programs} programs re-judged, "
                         f"{len(outcome.differences)} differ: {outcome.outcome}")  # fmt: skip
            else:
                self.say(f"[{position}/{stale}] {stage.name}: {outcome.outcome} ({outcome.note})")
            for difference in outcome.differences[:SHOWN_DIFFERENCES]:
                self.say(f"    {difference.render()}")
            if len(outcome.differences) > SHOWN_DIFFERENCES:
                where = "dry run: not written" if self.dry_run else f"all in {self.log_path}"
                self.say(f"    ... and {len(outcome.differences) - SHOWN_DIFFERENCES} more ({where})")
            outcomes.append(outcome)
            self._settle(stage, outcome, ledger)
            self._write_log(RekeyResult(self.new, outcomes, 0, 0, len(self.judgements.verdicts),
                                        round(self.judgements.seconds, 1), self.log_path), finished=False)  # fmt: skip
            return read_record(stage.directory / STAGE_FILE) or dict(stage.placeholder)

        self._walk(visit)
        return outcomes

    def _decide(self, stage: Stage, outcome: StageOutcome, lineage: Lineage) -> None:
        programs = self.programs.get(stage.directory, [])
        missing = [p for p in programs if p.key() not in self.judgements.verdicts]
        if missing:  # judged in the scan's list only when the scan saw it as re-keyable
            self._judge(missing)
        outcome.differences = self.judgements.differences(programs)
        if outcome.differences:
            outcome.outcome, outcome.note = DIFFERS, "`treeplay run` redoes it"
            return
        outcome.outcome = WOULD_REKEY if self.dry_run else REKEYED
        if not self.dry_run:
            self._rewrite(stage, outcome, lineage)

    def _rewrite(self, stage: Stage, outcome: StageOutcome, lineage: Lineage) -> None:
        """inputs.json then stage.json, each replaced atomically (stage.json is what marks it done)."""
        marker = stage.directory / STAGE_FILE
        record = read_record(marker)
        if record is None or record.get("inputs_hash") != outcome.old_hash:
            raise RekeyError(f"{marker}: changed while re-keying (inputs_hash is no longer {outcome.old_hash})")
        entry = {"from_hash": outcome.old_hash, "to_hash": stage.inputs_hash, "from_oracle": outcome.old_oracle,
                 "to_oracle": self.new if lineage.judged else None, "programs_rejudged": outcome.programs,
                 "log": self.log_path.name}  # fmt: skip
        updated = {**record, "inputs_hash": stage.inputs_hash}
        if lineage.judged:
            updated["oracle"] = self.new
        updated["rekeyed"] = [*(record.get("rekeyed") or []), entry]
        inputs = read_record(stage.directory / INPUTS_FILE) or {}
        write_text_atomic(stage.directory / INPUTS_FILE, json.dumps({**inputs, "inputs_hash": stage.inputs_hash}))
        write_text_atomic(marker, json.dumps(updated, indent=2, default=str))

    def _write_log(self, result: RekeyResult, *, finished: bool) -> None:
        if self.dry_run or not result.outcomes:
            return
        log = {"run_dir": str(self.run_dir), "config": self.config.name, "finished": finished,
               "new_oracle": self.new, "old_oracles": sorted({o.old_oracle for o in result.outcomes if o.old_oracle}),
               "programs_judged": result.judged, "judge_s": result.judge_s,
               "stages": [o.to_json() for o in result.outcomes]}  # fmt: skip
        write_text_atomic(self.log_path, json.dumps(log, indent=1))
