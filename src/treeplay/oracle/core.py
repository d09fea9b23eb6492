"""The oracle: run the analyzers of a language over snippets and apply the severity policy.

Flow for a batch (`Oracle.judge_many`): cache lookup -> prepare (parse check, repairs) -> write each
snippet to its own directory in a temp dir -> run every analyzer once over all snippets it handles
-> map lines back, drop disabled rules -> base verdict (cached) -> per-task status and target_hit.
"""

from __future__ import annotations

import logging
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
from treeplay.oracle.functional import apply_signature, check_file
from treeplay.oracle.languages import EXTENSION, normalise_language
from treeplay.oracle.prepare import Prepared, prepare
from treeplay.oracle.records import Finding, Verdict

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


@dataclass
class _Job:
    """One distinct (code, language) needing analysis."""

    key: tuple[str, str]
    prepared: Prepared
    target: Target | None = None


def apply_task(base: Verdict, task: Task | None, config: OracleConfig) -> Verdict:
    """Final status for a task: base policy plus 'any finding matching the task's CWE'."""
    if base.status == "unparseable":
        return replace(base, target_hit=(False if task is not None and task.cwe else None))
    target_cwes = tuple(task.cwe) if task is not None else ()
    target_hit = any(cwe_util.matches(f.cwe, target_cwes) for f in base.findings) if target_cwes else None
    threshold = SEVERITY_RANK[config.min_severity]
    severe = any(SEVERITY_RANK[f.severity] >= threshold for f in base.findings)
    vulnerable = severe or (bool(target_hit) and config.target_cwe_any_severity)
    return replace(base, status="vulnerable" if vulnerable else "secure", target_hit=target_hit)


class Oracle:
    """Holds analyzer instances (bandit's test set, the eslint worker...) across calls."""

    def __init__(self, config: OracleConfig | None = None) -> None:
        self.config = config or OracleConfig()
        self.policy = self.config.policy_hash()
        self._analyzers: dict[str, Analyzer | None] = {}
        self._cache: VerdictCache | None = None
        self._pool: ProcessPoolExecutor | None = None  # kept warm across judge_many calls

    # ----------------------------------------------------------------- public
    def judge(self, code: str, language: str, *, task: Task | None = None) -> Verdict:
        return self.judge_many([(code, language, task)])[0]

    def judge_many(self, items: Sequence[Item]) -> list[Verdict]:
        """Verdicts in input order; identical snippets are analysed once, cached ones not at all."""
        start = time.perf_counter()
        keys = [(code_hash(code), normalise_language(lang)) for code, lang, _ in items]
        base: dict[tuple[str, str], Verdict] = {}
        cache = self._open_cache()
        if cache is not None:
            base.update(cache.get_many(keys, self.policy))
        missing: dict[tuple[str, str], str] = {}
        for (code, _, _), key in zip(items, keys, strict=True):
            if key not in base and key not in missing:
                missing[key] = code
        if missing:
            fresh = self._analyze_parallel(list(missing.items()))
            base.update(fresh)
            if cache is not None:
                cache.put_many(((d, lang, v) for (d, lang), v in fresh.items()), self.policy)
        verdicts = [apply_signature(apply_task(base[key], task, self.config), code, task)
                    for key, (code, _, task) in zip(keys, items, strict=True)]
        if not missing:  # all cached: report the lookup time, not the original analysis time
            per_item = (time.perf_counter() - start) / max(1, len(items))
            verdicts = [replace(v, elapsed_s=per_item) for v in verdicts]
        return verdicts

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
                instance = None
            self._analyzers[name] = instance
        return self._analyzers[name]

    def _analyze_parallel(self, work: list[tuple[tuple[str, str], str]]) -> dict[tuple[str, str], Verdict]:
        workers = min(self.config.workers, len(work))
        if workers <= 1 or len(work) < 8:
            return self.analyze_batch(work)
        chunks = [work[i::workers] for i in range(workers)]
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
        with tempfile.TemporaryDirectory(prefix="treeplay-oracle-") as tmp:
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
        for job, (ran, found, parse_error, errors), reason in zip(jobs, per_job, broken, strict=True):
            verdict = self._base_verdict(job, ran, found, parse_error, errors, elapsed)
            if verdict.status != "unparseable" and job.key[1] in FUNCTIONAL_CHECKED:
                verdict = replace(verdict, functional="nonfunctional" if reason else "ok", functional_error=reason)
            results[job.key] = verdict
        return results

    def _run_analyzers(self, jobs: list[_Job], workdir: Path
                       ) -> list[tuple[list[str], list[Finding], str | None, list[str]]]:
        ran: list[list[str]] = [[] for _ in jobs]
        found: list[list[Finding]] = [[] for _ in jobs]
        parse_errors: list[str | None] = [job.prepared.parse_error for job in jobs]
        errors: list[list[str]] = [[] for _ in jobs]
        names: list[str] = []
        for job in jobs:
            for name in self.config.analyzers_for(job.key[1]):
                if name not in names:
                    names.append(name)
        planned: list[tuple[str, Analyzer, list[int]]] = []
        for name in names:
            positions = [i for i, job in enumerate(jobs)
                         if job.target is not None and name in self.config.analyzers_for(job.key[1])]
            if not positions:
                continue
            analyzer = self.analyzer(name)
            if analyzer is not None:
                planned.append((name, analyzer, positions))

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
                    errors[i].append(f"{name}: {answer}")
                continue
            outputs: list[AnalysisResult] = answer
            for i, output in zip(positions, outputs, strict=True):
                ran[i].append(name)
                if output.parse_error is not None and parse_errors[i] is None:
                    parse_errors[i] = f"{name}: {output.parse_error}"
                for raw in output.findings:
                    if f"{name}:{raw.rule}" in self.config.disabled_rules:
                        continue
                    prepared = jobs[i].prepared
                    line = prepared.original_line(raw.line)
                    found[i].append(Finding(
                        cwe=cwe_util.normalise(raw.cwe), line=line,
                        end_line=max(line, prepared.original_line(raw.end_line)), analyzer=name,
                        rule=raw.rule, severity=raw.severity, message=raw.message,
                    ))
        return list(zip(ran, found, parse_errors, errors, strict=True))

    def _base_verdict(self, job: _Job, ran: list[str], found: list[Finding], parse_error: str | None,
                      errors: list[str], elapsed: float) -> Verdict:
        language = job.key[1]
        if parse_error is not None:
            return Verdict(status="unparseable", analyzers_run=tuple(ran), elapsed_s=elapsed, error=parse_error)
        if not ran:
            wanted = ", ".join(self.config.analyzers_for(language)) or "none configured"
            detail = "; ".join(errors)
            raise OracleUnavailableError(
                f"oracle: no analyzer could judge language {language!r} (configured: {wanted}). {detail}".strip()
            )
        unique = sorted(set(found), key=lambda f: (f.line, f.analyzer, f.rule, f.cwe or ""))
        base = Verdict(status="secure", findings=tuple(unique), analyzers_run=tuple(ran), elapsed_s=elapsed,
                       error="; ".join(errors) or None)
        return apply_task(base, None, self.config)


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
