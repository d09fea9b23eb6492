"""The oracle: run the analyzers of a language over snippets and apply the severity policy.

Flow for a batch (`Oracle.judge_many`): cache lookup -> prepare (parse check, repairs) -> write each
snippet to its own directory in a temp dir -> run every analyzer once over all snippets it handles
-> map lines back, drop disabled rules -> base verdict (cached) -> per-task status and target_hit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import TYPE_CHECKING

from treeplay.oracle import cwe as cwe_util
from treeplay.oracle.analyzers import AnalysisResult, Analyzer, Target, ToolError, create_analyzer
from treeplay.oracle.cache import VerdictCache, code_hash
from treeplay.oracle.config import SEVERITY_RANK, OracleConfig
from treeplay.oracle.functional import apply_signature, check_file, functional_fingerprint
from treeplay.oracle.languages import EXTENSION, try_normalise_language
from treeplay.oracle.prepare import Prepared, prepare
from treeplay.oracle.records import Finding, Verdict, VerdictStatus, status_kind
from treeplay.oracle.versions import analyzer_version

if TYPE_CHECKING:
    from treeplay.tasks.records import Task

LOG = logging.getLogger("treeplay.oracle")
_WARNED: set[str] = set()

Item = tuple[str, str, "Task | None"]
FUNCTIONAL_CHECKED = ("py", "c", "cpp")  # languages treeplay.oracle.functional checks


class OracleUnavailableError(RuntimeError):
    """No analyzer for a language could run: judging would be a silent 'secure'."""


def warn_once(key: str, message: str) -> None:
    if key in _WARNED:
        return
    _WARNED.add(key)
    LOG.warning(message)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def scratch_dir() -> str | None:
    """Where a batch writes its snippets (one directory each): $TREEPLAY_ORACLE_TMP, else /dev/shm
    when writable with >= 1 GiB free (tmpfs: on the disk-backed /tmp of a busy machine creating and
    removing 200 snippet directories took 0.85 s of wall time, on /dev/shm 0.06 s; containers often
    mount a 64 MB /dev/shm, too small for CodeQL databases), else the system default."""
    chosen = os.environ.get("TREEPLAY_ORACLE_TMP")
    if chosen:
        return chosen
    shm = "/dev/shm"
    if not (os.path.isdir(shm) and os.access(shm, os.W_OK | os.X_OK)):
        return None
    stat = os.statvfs(shm)
    return shm if stat.f_bavail * stat.f_frsize >= 1 << 30 else None


@dataclass
class _Job:
    """One distinct (code, language) needing analysis."""

    key: tuple[str, str]
    prepared: Prepared
    target: Target | None = None


@dataclass
class _Ran:
    """What the analyzers did with one job."""

    ran: list[str]
    found: list[Finding]
    parse_error: str | None
    errors: list[str]  # "<analyzer>: <why>" for every analyzer that failed, timed out or is missing
    failed: list[str]


def apply_task(base: Verdict, task: Task | None, config: OracleConfig) -> Verdict:
    """Final status for a task: base policy plus 'any finding matching the task's CWE'.

    A base verdict with failed analyzers is `incomplete` unless the analyzers that ran found a
    vulnerability: the oracle never says `secure` about code it did not fully judge.
    """
    # An unparseable program with findings parsed only after its tail was cut (prepare.py "cut-tail"):
    # its findings can make it vulnerable, it is never secure.
    cut = base.status == "unparseable" and bool(base.findings)
    if status_kind(base.status) != "judged" and base.status != "incomplete" and not cut:  # unparseable, unsupported
        return replace(base, target_hit=(False if task is not None and task.cwe else None))
    target_cwes = tuple(task.cwe) if task is not None else ()
    target_hit = any(cwe_util.matches(f.cwe, target_cwes) for f in base.findings) if target_cwes else None
    threshold = SEVERITY_RANK[config.min_severity]
    severe = any(SEVERITY_RANK[f.severity] >= threshold for f in base.findings)
    vulnerable = severe or (bool(target_hit) and config.target_cwe_any_severity)
    if cut:
        return replace(base, status="vulnerable" if vulnerable else "unparseable",
                       target_hit=target_hit)
    status: VerdictStatus = "vulnerable" if vulnerable else ("incomplete" if base.failed_analyzers else "secure")
    return replace(base, status=status, target_hit=target_hit)


def unsupported_verdict(language: str, config: OracleConfig) -> Verdict:
    judged = ", ".join(config.judged_languages())
    return Verdict(status="unsupported", error=f"oracle: no judge for language {language!r} (judged: {judged})")


class Oracle:
    """Holds analyzer instances (bandit's test set, the eslint worker...) across calls."""

    def __init__(self, config: OracleConfig | None = None) -> None:
        self.config = config or OracleConfig()
        self.policy = self.config.policy_hash()
        self._analyzers: dict[str, Analyzer | None] = {}
        self._unavailable: dict[str, str] = {}  # analyzer -> why it cannot run here
        self._policies: dict[str, str] = {}
        self._cache: VerdictCache | None = None
        self._pool: ProcessPoolExecutor | None = None  # kept warm across judge_many calls

    # ----------------------------------------------------------------- public
    def judge(self, code: str, language: str, *, task: Task | None = None) -> Verdict:
        return self.judge_many([(code, language, task)])[0]

    def judge_many(self, items: Sequence[Item]) -> list[Verdict]:
        """Verdicts in input order; identical snippets are analysed once, cached ones not at all.

        A language without a judge gets an `unsupported` verdict (never an exception, never secure).
        """
        start = time.perf_counter()
        keys = [(code_hash(code), self._language_key(lang)) for code, lang, _ in items]
        base: dict[tuple[str, str], Verdict] = {
            key: unsupported_verdict(lang, self.config)
            for key, (_, lang, _) in zip(keys, items, strict=True) if not self.config.has_judge(key[1])
        }
        cache = self._open_cache()
        if cache is not None:
            for language in sorted({k[1] for k in keys if k not in base}):
                base.update(cache.get_many([k for k in keys if k[1] == language], self.policy_for(language)))
        missing: dict[tuple[str, str], str] = {}
        for (code, _, _), key in zip(items, keys, strict=True):
            if key not in base and key not in missing:
                missing[key] = code
        if missing:
            fresh = self._analyze_parallel(list(missing.items()))
            base.update(fresh)
            if cache is not None:  # verdicts with failed analyzers are retried next time, not cached
                for language in sorted({k[1] for k in fresh}):
                    cache.put_many(((d, lang, v) for (d, lang), v in fresh.items()
                                    if lang == language and not v.failed_analyzers), self.policy_for(language))
        verdicts = [apply_signature(apply_task(base[key], task, self.config), code, task)
                    for key, (code, _, task) in zip(keys, items, strict=True)]
        if not missing:  # all cached: report the lookup time, not the original analysis time
            per_item = (time.perf_counter() - start) / max(1, len(items))
            verdicts = [replace(v, elapsed_s=per_item) for v in verdicts]
        return verdicts

    @staticmethod
    def _language_key(language: str) -> str:
        return try_normalise_language(language) or language.strip().lower()

    def policy_for(self, language: str) -> str:
        """Cache key part: the policy hash (settings, every rule file, ORACLE_VERSION) plus the
        analyzers of the language that can run here and their versions, plus what the functional
        sanity check of the language sees (its compiler, pyflakes, the importable modules), so
        installing or upgrading a tool or a module invalidates verdicts."""
        if language not in self._policies:
            tools = [(name, analyzer_version(name) if self.analyzer(name) is not None else "missing")
                     for name in self.config.analyzers_for(language)]
            functional = functional_fingerprint(language) if language in FUNCTIONAL_CHECKED else None
            payload = json.dumps([self.policy, language, tools, functional])
            self._policies[language] = hashlib.sha256(payload.encode()).hexdigest()[:16]
        return self._policies[language]

    def fingerprint(self) -> str:
        """One hash of the policy for every judged language (for the pipeline's stage digests)."""
        parts = [(lang, self.policy_for(lang)) for lang in self.config.judged_languages()]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for analyzer in self._analyzers.values():
            closer = getattr(analyzer, "close", None)
            if callable(closer):
                closer()
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    # ----------------------------------------------------------------- internals
    def _open_cache(self) -> VerdictCache | None:
        if not self.config.use_cache:
            return None
        if self._cache is None:
            self._cache = VerdictCache(self.config.resolved_cache_path())
        return self._cache

    def analyzer(self, name: str) -> Analyzer | None:
        """The shared instance of a registered analyzer, or None (with one warning) when unusable."""
        if name not in self._analyzers:
            instance: Analyzer | None = create_analyzer(name, timeout_s=self.config.tool_timeout_s)
            reason = instance.unavailable_reason() if instance is not None else "unknown"
            if reason is not None:
                warn_once(f"missing:{name}", f"oracle: analyzer {name!r} unavailable: {reason}")
                self._unavailable[name] = reason
                instance = None
            self._analyzers[name] = instance
        return self._analyzers[name]

    def _analyze_parallel(self, work: list[tuple[tuple[str, str], str]]) -> dict[tuple[str, str], Verdict]:
        workers = min(self.config.workers, len(work))
        if workers <= 1 or len(work) < 8:
            return self.analyze_batch(work)
        chunks = split_by_size(work, workers)
        child_config = replace(self.config, workers=1, use_cache=False)
        if self._pool is None:
            # spawn: fork is unsafe once torch threads exist in the parent. The pool (and in each
            # child its Oracle: bandit's test set, rule files, the eslint worker) lives until close().
            self._pool = ProcessPoolExecutor(max_workers=self.config.workers, mp_context=get_context("spawn"))
        merged: dict[tuple[str, str], Verdict] = {}
        for part in self._pool.map(_analyze_in_child, [child_config] * workers, chunks):
            merged.update(part)
        return merged

    def analyze_batch(self, work: list[tuple[tuple[str, str], str]]) -> dict[tuple[str, str], Verdict]:
        """Base verdicts (no task) for distinct (hash, language) -> code, in one pass per analyzer."""
        start = time.perf_counter()
        jobs = [_Job(key, prepare(code, key[1], repair=self.config.repair_partial)) for key, code in work]
        results: dict[tuple[str, str], Verdict] = {}
        with tempfile.TemporaryDirectory(prefix="treeplay-oracle-", dir=scratch_dir()) as tmp:
            workdir = Path(tmp)
            for i, job in enumerate(jobs):
                if job.prepared.parse_error is not None:
                    continue
                folder = workdir / f"s{i}"
                folder.mkdir()
                path = folder / f"snippet.{EXTENSION[job.key[1]]}"
                path.write_text(job.prepared.text, encoding="utf-8")
                job.target = Target(index=i, language=job.key[1], text=job.prepared.text, path=path)
            per_job = self._run_analyzers(jobs, workdir)
            broken = [check_file(job.target.path, job.key[1]) if job.target is not None else None for job in jobs]
        elapsed = (time.perf_counter() - start) / max(1, len(jobs))
        for job, outcome, reason in zip(jobs, per_job, broken, strict=True):
            verdict = self._base_verdict(job, outcome, elapsed)
            if verdict.status != "unparseable" and job.key[1] in FUNCTIONAL_CHECKED:
                verdict = replace(verdict, functional="nonfunctional" if reason else "ok", functional_error=reason)
            results[job.key] = verdict
        return results

    def _plan(self, jobs: list[_Job], outcomes: list[_Ran]) -> list[tuple[str, Analyzer, list[int]]]:
        """(analyzer, positions) per analyzer to run; a missing analyzer is a failure of its jobs."""
        names: list[str] = []
        for job in jobs:
            names += [n for n in self.config.analyzers_for(job.key[1]) if n not in names]
        planned: list[tuple[str, Analyzer, list[int]]] = []
        for name in names:
            positions = [i for i, job in enumerate(jobs)
                         if job.target is not None and name in self.config.analyzers_for(job.key[1])]
            if not positions:
                continue
            analyzer = self.analyzer(name)
            if analyzer is not None:
                planned.append((name, analyzer, positions))
                continue
            for i in positions:
                outcomes[i].failed.append(name)
                outcomes[i].errors.append(f"{name}: unavailable: {self._unavailable.get(name, 'unknown')}")
        return planned

    def _run_analyzers(self, jobs: list[_Job], workdir: Path) -> list[_Ran]:
        outcomes = [_Ran([], [], job.prepared.parse_error, [], []) for job in jobs]
        planned = self._plan(jobs, outcomes)

        def run(plan: tuple[str, Analyzer, list[int]]) -> list[AnalysisResult] | ToolError:
            _, analyzer, positions = plan
            targets = [t for t in (jobs[i].target for i in positions) if t is not None]
            try:
                return analyzer.analyze(targets, workdir)
            except ToolError as exc:
                return exc

        # Analyzers run concurrently: external tools (semgrep-core, eslint, cppcheck...) wait in
        # subprocesses while bandit walks ASTs in this process.
        executor: Executor = ThreadPoolExecutor(max_workers=max(1, len(planned)))
        with executor:
            answers = list(executor.map(run, planned))
        for (name, _, positions), answer in zip(planned, answers, strict=True):
            if isinstance(answer, ToolError):
                warn_once(f"failed:{name}:{answer}", f"oracle: analyzer {name!r} failed on a batch: {answer}")
                for i in positions:
                    outcomes[i].failed.append(name)
                    outcomes[i].errors.append(f"{name}: {answer}")
                continue
            for i, output in zip(positions, answer, strict=True):
                self._record(name, jobs[i], output, outcomes[i])
        return outcomes

    def _record(self, name: str, job: _Job, output: AnalysisResult, outcome: _Ran) -> None:
        if output.error is not None:  # failed on this snippet (semgrep per-file timeout...)
            outcome.failed.append(name)
            outcome.errors.append(f"{name}: {output.error}")
            return
        outcome.ran.append(name)
        if output.parse_error is not None and outcome.parse_error is None:
            outcome.parse_error = f"{name}: {output.parse_error}"
        for raw in output.findings:
            if f"{name}:{raw.rule}" in self.config.disabled_rules:
                continue
            line = job.prepared.original_line(raw.line)
            outcome.found.append(Finding(
                cwe=cwe_util.normalise(raw.cwe), line=line,
                end_line=max(line, job.prepared.original_line(raw.end_line)), analyzer=name,
                rule=raw.rule, severity=raw.severity, message=raw.message,
            ))

    def _base_verdict(self, job: _Job, outcome: _Ran, elapsed: float) -> Verdict:
        language = job.key[1]
        if outcome.parse_error is not None:
            return Verdict(status="unparseable", analyzers_run=tuple(outcome.ran), elapsed_s=elapsed,
                           error=outcome.parse_error)
        wanted = self.config.analyzers_for(language)
        if not outcome.ran and all(name in self._unavailable for name in wanted):
            detail = "; ".join(outcome.errors)
            raise OracleUnavailableError(
                f"oracle: no analyzer can run for language {language!r} (configured: "
                f"{', '.join(wanted) or 'none'}). {detail}".strip()
            )
        unique = sorted(set(outcome.found), key=lambda f: (f.line, f.analyzer, f.rule, f.cwe or ""))
        base = Verdict(status="secure", findings=tuple(unique), analyzers_run=tuple(outcome.ran), elapsed_s=elapsed,
                       error="; ".join(outcome.errors) or None, failed_analyzers=tuple(outcome.failed))
        cut_error = job.prepared.cut_error
        if cut_error is not None:  # judged on the part before the cut: unparseable unless a finding flags it
            note = f"{cut_error} (truncated: judged the lines before the cut)"
            base = replace(base, status="unparseable", error="; ".join([note, *outcome.errors]))
        return apply_task(base, None, self.config)


def split_by_size(work: list[tuple[tuple[str, str], str]], parts: int) -> list[list[tuple[tuple[str, str], str]]]:
    """`parts` chunks of about equal analysis cost: longest snippets first, each to the chunk with the
    least text so far (plus a fixed per-snippet share). Analyzer time grows with a snippet's size: on
    the speed benchmark's 200 snippets round-robin chunks took 1.5 and 1.9 CPU s, these 1.7 and 1.8."""
    chunks: list[list[tuple[tuple[str, str], str]]] = [[] for _ in range(parts)]
    loads = [0] * parts
    for item in sorted(work, key=lambda kv: (-len(kv[1]), kv[0])):
        lightest = loads.index(min(loads))
        chunks[lightest].append(item)
        loads[lightest] += len(item[1]) + _PER_SNIPPET_CHARS
    return chunks


_PER_SNIPPET_CHARS = 400  # the size-independent part of a snippet's analysis cost, in characters
_CHILD_ORACLES: dict[str, Oracle] = {}


def _analyze_in_child(config: OracleConfig, work: list[tuple[tuple[str, str], str]]
                      ) -> dict[tuple[str, str], Verdict]:
    """Runs in a pool process; its Oracle (warm analyzers) is reused by later batches."""
    key = repr(config)
    if key not in _CHILD_ORACLES:
        _CHILD_ORACLES[key] = Oracle(config)
    return _CHILD_ORACLES[key].analyze_batch(work)


_DEFAULT: dict[str, Oracle] = {}


def default_oracle(config: OracleConfig | None = None) -> Oracle:
    """One shared Oracle per distinct config in this process (keeps analyzers warm)."""
    config = config or OracleConfig()
    key = repr(config)
    if key not in _DEFAULT:
        _DEFAULT[key] = Oracle(config)
    return _DEFAULT[key]


def judge(code: str, language: str, *, task: Task | None = None, config: OracleConfig | None = None) -> Verdict:
    """Judge one snippet. Prefer `judge_many` for many snippets (analyzers then run once per batch)."""
    return default_oracle(config).judge(code, language, task=task)


def judge_many(items: Sequence[Item], *, config: OracleConfig | None = None) -> list[Verdict]:
    """Judge `(code, language, task_or_None)` items; verdicts in input order."""
    return default_oracle(config).judge_many(items)
