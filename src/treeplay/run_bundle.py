"""`treeplay bundle` / `treeplay unbundle`: carry a run's results, without its model weights, to
another checkout, so a run of several seeds can be finished over several sessions (or machines).

A bundle is a `.tar.xz` of the run dir holding everything the report and a resumed run read
(`config.yaml`, every `stage.json`/`inputs.json`, generations, metrics, trees, pairs, training
logs, budgets) and none of the trained weights (`*.safetensors`, `*.gguf`, `*.bin`, `*.pt`,
training `checkpoints/`, the tokenizer copies in `final/`): a trained arm of the 36-task design
leaves 70 MB of adapter (safetensors and GGUF, 35 MB each) and 203 MB of checkpoints behind
(measured 2026-11-28), the results of a whole seed are a few MB. `BUNDLE.json` at the top lists what was left out (path, bytes, sha256).

Unbundled into a run dir, the finished stages are done again (their `stage.json` hashes match)
and `treeplay run` goes on with what is missing. A stage that would need a trained model the
bundle left out (e.g. a new bench for a trained arm) is a blocker of the run check
(`missing_model_blockers`), never a silent retrain or a crash an hour in.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from treeplay.policy.chain import TRAIN_META
from treeplay.policy.models import sha256_file
from treeplay.run_layout import RunLayout
from treeplay.run_lock import LOCK_FILE, RunDirBusy, hold_run_dir
from treeplay.stages import STAGE_FILE, PlannedStage, Stage, read_record

MANIFEST = "BUNDLE.json"
WEIGHT_SUFFIXES = (".safetensors", ".gguf", ".bin", ".pt", ".pth", ".ckpt")
LEFT_OUT_DIRS = ("checkpoints",)  # training checkpoints (weights + optimizer state)
MODEL_DIR = "final"  # a train stage's trained model (`treeplay.train.trainer.save_final`)
MODEL_RECORDS = (TRAIN_META, "adapter_config.json")  # kept: what the model was
NOT_RESULTS = ("superseded", LOCK_FILE)  # moved-away stages of other inputs; a live run's lock


class BundleError(RuntimeError):
    """A bundle that cannot be written or restored (names the file and what is wrong)."""


__all__ = ["BundleError", "RollingBundle", "RunDirBusy", "bundle_blocker", "missing_model_blockers", "read_manifest",
           "restore_bundle", "write_bundle"]  # fmt: skip


@dataclass
class BundleSummary:
    path: Path
    files: int = 0
    bytes_in: int = 0
    left_out: list[dict[str, Any]] = field(default_factory=list)


def is_weight(relative: Path) -> bool:
    """Trained-model weights, checkpoint state, or a file of a trained model dir (`final/`) other
    than its treeplay and adapter records (the tokenizer copies serve only with the weights)."""
    if relative.suffix in WEIGHT_SUFFIXES or any(part in LEFT_OUT_DIRS for part in relative.parts[:-1]):
        return True
    return len(relative.parts) > 1 and relative.parts[-2] == MODEL_DIR and relative.name not in MODEL_RECORDS


def _results(run_dir: Path, seeds: Sequence[int] | None) -> Iterator[Path]:
    """The run dir's files (relative paths, sorted), outside `superseded/` and other seeds."""
    wanted = {f"seed-{s}" for s in seeds} if seeds is not None else None
    for path in sorted(run_dir.rglob("*")):
        relative = path.relative_to(run_dir)
        if not path.is_file() or path.is_symlink() or relative.parts[0] in NOT_RESULTS:
            continue
        if wanted is not None and relative.parts[0].startswith("seed-") and relative.parts[0] not in wanted:
            continue
        yield relative


def write_bundle(run_dir: Path, out: Path, seeds: Sequence[int] | None = None) -> BundleSummary:
    """Pack `run_dir` (only `seeds` when given) into `out` (.tar.xz) without model weights."""
    layout = RunLayout(run_dir)
    if not layout.config_file.is_file():
        raise BundleError(f"{run_dir}: not a run dir (no {layout.config_file.name})")
    missing = sorted(set(seeds or ()) - set(layout.seeds()))
    if missing:
        raise BundleError(f"{run_dir}: no seed dir for seed(s) {missing} (seeds on disk: {layout.seeds()})")
    summary = BundleSummary(out)
    kept: list[Path] = []
    for relative in _results(run_dir, seeds):
        path = run_dir / relative
        if is_weight(relative):
            summary.left_out.append({"path": str(relative), "bytes": path.stat().st_size, "sha256": sha256_file(path)})
        else:
            kept.append(relative)
    manifest = {"created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "run_dir": str(run_dir),
                "seeds": list(seeds) if seeds is not None else layout.seeds(), "left_out": summary.left_out}  # fmt: skip
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f"{out.name}.{os.getpid()}.partial")  # two writers never share a partial file
    with tarfile.open(partial, "w:xz") as tar:
        data = json.dumps(manifest, indent=2).encode()
        info = tarfile.TarInfo(MANIFEST)
        info.size, info.mtime = len(data), int(datetime.now(UTC).timestamp())
        tar.addfile(info, io.BytesIO(data))
        for relative in kept:
            tar.add(run_dir / relative, arcname=str(relative), recursive=False)
            summary.files += 1
            summary.bytes_in += (run_dir / relative).stat().st_size
    partial.replace(out)
    return summary


def read_manifest(bundle: Path) -> dict[str, Any]:
    try:
        with tarfile.open(bundle, "r:*") as tar:
            member = tar.extractfile(MANIFEST)
            if member is None:
                raise KeyError(MANIFEST)
            return dict(json.loads(member.read()))
    except (OSError, tarfile.TarError, KeyError, json.JSONDecodeError) as exc:
        raise BundleError(f"{bundle}: not a treeplay bundle ({type(exc).__name__}: {exc})") from None


def restore_bundle(bundle: Path, run_dir: Path) -> tuple[int, int]:
    """Unpack `bundle` into `run_dir`. A file already there with the same bytes is kept (so a
    restore can be repeated); one with other bytes stops the restore before anything is written, and
    so does a run writing there (`RunDirBusy`).
    Returns (files written, files already there)."""
    read_manifest(bundle)
    with tarfile.open(bundle, "r:*") as tar:
        members = [m for m in tar.getmembers() if m.isfile() and m.name != MANIFEST]
        conflicts, same = [], []
        for member in members:
            target = run_dir / member.name
            if not target.exists():
                continue
            source = tar.extractfile(member)
            if source is not None and target.is_file() and target.read_bytes() == source.read():
                same.append(member)
            else:
                conflicts.append(member.name)
        if conflicts:
            raise BundleError(f"{bundle}: {len(conflicts)} file(s) already in {run_dir} with other contents, "
                              f"e.g. {conflicts[:3]}; restore into an empty run dir (nothing was written)")  # fmt: skip
        todo = [m for m in members if m not in same]
        with hold_run_dir(run_dir, "treeplay unbundle"):  # not while a run writes there
            tar.extractall(run_dir, members=todo, filter="data")  # no absolute paths, links or `..`
    return len(todo), len(same)


def missing_model_blockers(planned: Sequence[PlannedStage], source: str) -> list[str]:
    """Stages still to run of an arm whose finished training left no model here (restored from a
    bundle, or deleted): they would load a model that is not there."""
    problems = []
    for item in planned:
        stage = item.stage
        if stage.kind != "train" or not item.done:
            continue
        record = read_record(stage.directory / STAGE_FILE) or {}
        model_dir = Path(str(record.get("final_model_dir", "")))
        if "untrained" in record or has_weights(model_dir):
            continue
        arm_dir = stage.directory.parent.parent
        later = [p.stage.name for p in planned if not p.done and arm_dir in p.stage.directory.parents]
        if later:
            problems.append(
                f"{source}: {stage.name} is done but its model {model_dir} has no weights (a bundle leaves them "
                f"out), and {len(later)} stage(s) need it, e.g. {later[0]}; delete {stage.directory} to train it again"
            )
    return problems


def has_weights(model_dir: Path) -> bool:
    return model_dir.is_dir() and any(p.suffix in WEIGHT_SUFFIXES for p in model_dir.rglob("*"))


def bundle_members(bundle: Path) -> list[str]:
    """The result files a bundle holds (relative paths, without its manifest)."""
    read_manifest(bundle)
    with tarfile.open(bundle, "r:*") as tar:
        return [m.name for m in tar.getmembers() if m.isfile() and m.name != MANIFEST]


def bundle_blocker(bundle: Path, run_dir: Path, source: str) -> str | None:
    """`treeplay run --bundle FILE`: why FILE cannot be rewritten from `run_dir`, or None. An existing
    bundle must have been restored here (every file of it is in the run dir), else rewriting it
    from this run dir would drop the results it carries (e.g. a fresh checkout that forgot to unbundle)."""
    if bundle.suffixes[-2:] != [".tar", ".xz"]:
        return f"{source}: --bundle {bundle}: a bundle is a .tar.xz file"
    if not bundle.exists():
        return None
    try:
        members = bundle_members(bundle)
    except (BundleError, OSError, tarfile.TarError) as exc:
        return f"{source}: --bundle {bundle}: {exc}"
    missing = [name for name in members if not (run_dir / name).is_file()]
    if missing:
        return (f"{source}: --bundle {bundle}: {len(missing)} of its {len(members)} file(s) are not in {run_dir} "
                f"(e.g. {missing[0]}), so rewriting it would drop them: `treeplay unbundle {bundle}` first, "
                "or name a new file")  # fmt: skip
    return None


class RollingBundle:
    """`treeplay run --bundle FILE`: the run dir's bundle, rewritten (atomically) after every stage that
    ran and every arm budget written. A session can end in the middle of a long run (`runs/` does
    not outlive it): what finished before is then in FILE, and only the stage that was running and
    the trained weights (never bundled) are lost. Rewrites happen between stages, so no file is
    bundled mid-write; a rewrite that fails is a warning, never the end of the run."""

    def __init__(self, run_dir: Path, out: Path, say: Callable[[str], None]) -> None:
        self.run_dir = run_dir
        self.out = out
        self.say = say
        self.written = 0

    def stage_runner(self, run: Callable[[Stage], dict[str, Any]]) -> Callable[[Stage], dict[str, Any]]:
        """`run`, then a rewrite when the stage was not done before (a stage that fails rewrites nothing)."""

        def run_then_bundle(stage: Stage) -> dict[str, Any]:
            fresh = stage.done_record() is None
            record = run(stage)
            if fresh:
                self.write(f"after {stage.name}")
            return record

        return run_then_bundle

    def write(self, why: str) -> None:
        try:
            summary = write_bundle(self.run_dir, self.out)
        except (BundleError, OSError, tarfile.TarError) as exc:
            self.say(f"warning: bundle {self.out} not rewritten {why}: {exc}")
            return
        self.written += 1
        self.say(f"bundle: {self.out} rewritten {why} ({summary.files} files, {self.out.stat().st_size / 1e6:.1f} MB)")
