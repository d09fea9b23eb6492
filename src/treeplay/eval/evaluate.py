"""Evaluate a policy on a benchmark: sample, judge, test, write generations.jsonl + metrics.json.

`generations.jsonl` holds one `Generation` per sample (task, program, verdict, test result: the
record and its on-disk contract are in `treeplay.eval.records`) and is append-only: a killed evaluation resumes and skips tasks whose n generations are all written.
`metrics.json` is recomputed from the whole file at the end (see `treeplay.eval.metrics`).
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from treeplay.eval.config import EvalConfig
from treeplay.eval.metrics import METRICS_VERSION, Outcome, summarise
from treeplay.eval.records import Generation, read_generations
from treeplay.jsonl import append_jsonl, to_jsonable, write_jsonl, write_text_atomic
from treeplay.oracle.records import TestCaseOutcome, TestResult, Verdict
from treeplay.policy.records import Completion, Policy, SampleRequest, SamplingParams
from treeplay.tasks.records import Task

GENERATIONS_FILE = "generations.jsonl"
METRICS_FILE = "metrics.json"
SETTINGS_FILE = "eval_settings.json"

SEC_EVAL_GROUPS = ("trained", "trained-new", "not-trained")
SAFECODER_SPLITS = ("train", "val")
_TRAIN_FROM = re.compile(r"train-from-(\d+)")
BENCH_HELP = (
    "securityeval | sec-eval[:trained|:trained-new|:not-trained] | cweval:<root> | humaneval | sallm | "
    "safecoder:train|val|train-from-<N> (in-distribution diagnostic, round-robin over CWEs; train-from-N skips "
    "the first N, the tasks a run with train_tasks limit N trained on); "
    "append @<lang>[,<lang>...] to keep those languages only (sec-eval@c,go,java,js,rb)"
)
# The standard HumanEval stop sequences (Chen et al. 2021): stop when the function body ends.
HUMANEVAL_STOP = ("\nclass ", "\ndef ", "\n#", "\nif __name__", "\nprint(")

ProgressCallback = Callable[[int, int], None]  # (tasks done, tasks total)


class EvalError(RuntimeError):
    """An evaluation that cannot run or resume as asked (bad bench name, mismatching settings...)."""


# ---- benchmark resolution


def default_data_root() -> Path:
    """`$TREEPLAY_DATA` (or `$TREEPLAY_SHARED_DATA`), else `../shared/data` next to the repository."""
    for var in ("TREEPLAY_DATA", "TREEPLAY_SHARED_DATA"):
        if os.environ.get(var):
            return Path(os.environ[var])
    repo = Path(__file__).resolve().parents[3]
    return repo.parent / "shared" / "data"


def bench_slug(name: str) -> str:
    """A directory name for a bench: 'sec-eval:not-trained' -> 'sec-eval-not-trained',
    'sec-eval@c,js' -> 'sec-eval-c-js'."""
    name, _, langs = name.partition("@")
    kind, _, arg = name.partition(":")
    slug = "cweval" if kind == "cweval" else kind if not arg else f"{kind}-{arg}"
    return slug + "".join(f"-{lang}" for lang in _bench_languages(langs))


def _bench_languages(spec: str) -> list[str]:
    return [lang.strip() for lang in spec.split(",") if lang.strip()]


def resolve_bench(name: str, data_root: Path | str | None = None, *, limit: int | None = None) -> list[Task]:
    """The tasks of a benchmark name (see BENCH_HELP), loaded with `treeplay.tasks.load_tasks`."""
    from treeplay.tasks import load_tasks

    root = Path(data_root) if data_root is not None else default_data_root()
    full_name = name
    name, at, lang_spec = name.partition("@")
    languages = _bench_languages(lang_spec)
    if at and not languages:
        raise EvalError(f"bench {full_name!r}: no language after '@' (e.g. sec-eval@c,js)")
    kind, _, arg = name.partition(":")
    tasks: list[Task]
    if kind == "securityeval":
        files = sorted((root / "securityeval").glob("*.json"))
        if not files:
            raise EvalError(f"bench {name!r}: no SecurityEval JSON under {root / 'securityeval'}")
        tasks = load_tasks(files[0])
    elif kind == "sec-eval":
        path = root / "safecoder" / "sec_eval"
        if not path.is_dir():
            raise EvalError(f"bench {name!r}: sec_eval scenarios not found at {path}")
        if arg and arg not in SEC_EVAL_GROUPS:
            raise EvalError(f"bench {name!r}: unknown sec-eval group {arg!r} (expected one of {SEC_EVAL_GROUPS})")
        tasks = load_tasks(path)  # the root, so task ids keep their group ("sec-eval/not-trained/...")
        if arg:
            tasks = [t for t in tasks if t.meta.get("group") == arg]
    elif kind == "cweval":
        if not arg:
            raise EvalError("bench 'cweval' needs a root: cweval:<path to a CWEval checkout>")
        path = Path(arg).expanduser()
        if not path.is_dir():
            raise EvalError(f"bench {name!r}: CWEval root {path} is not a directory")
        tasks = load_tasks(path)
    elif kind == "sallm":
        path = root / "sallm"
        if not path.is_dir():
            raise EvalError(f"bench {name!r}: SALLM not found at {path}")
        tasks = load_tasks(path, format="sallm")
    elif kind == "safecoder":
        tasks = _safecoder_bench(root, full_name, arg, languages)
    elif kind == "humaneval":
        from treeplay.tasks.loaders import humaneval_path

        tasks = load_tasks(humaneval_path())
    else:
        raise EvalError(f"unknown bench {name!r} (expected {BENCH_HELP})")
    if languages:
        present = sorted({t.language for t in tasks})
        unknown = [lang for lang in languages if lang not in present]
        if unknown:
            raise EvalError(f"bench {full_name!r}: no {', '.join(unknown)} tasks (languages here: {', '.join(present)})")
        tasks = [t for t in tasks if t.language in languages]
    if not tasks:
        raise EvalError(f"bench {full_name!r}: no tasks found")
    return tasks[:limit] if limit is not None else tasks


def _safecoder_bench(root: Path, name: str, split: str, languages: Sequence[str]) -> list[Task]:
    """SafeCoder's training distribution as an eval bench: the instruction only, the model writes the
    function, the oracle judges it. Loaded as `train_tasks: {language: ..., order: round-robin-cwe}`
    loads it, so `safecoder:train@py` with `limit: N` is exactly the tasks a run with that limit
    trained on, and `safecoder:train-from-N@py` the train rows it never saw (where a run's
    hyper-parameters can be chosen without touching an evaluation set). The oracle's rules were tuned
    on these rows: a diagnostic of what training changed, never a headline number."""
    from treeplay.tasks.config import TaskSource

    skip = 0
    if (found := _TRAIN_FROM.fullmatch(split)) is not None:
        split, skip = "train", int(found.group(1))
    if split not in SAFECODER_SPLITS:
        raise EvalError(f"bench {name!r}: expected {' or '.join(f'safecoder:{s}' for s in SAFECODER_SPLITS)}"
                        " or safecoder:train-from-<N>")  # fmt: skip
    path = root / "safecoder" / f"sec-new-desc.{split}.jsonl"
    if not path.is_file():
        raise EvalError(f"bench {name!r}: SafeCoder {split} rows not found at {path}")
    source = TaskSource(path=str(path), language=",".join(languages) or None, order="round-robin-cwe")
    tasks = source.load(path)
    if skip >= len(tasks):
        raise EvalError(f"bench {name!r}: skips {skip} of only {len(tasks)} SafeCoder {split} tasks")
    return tasks[skip:]


def is_humaneval(tasks: Sequence[Task]) -> bool:
    return bool(tasks) and all("entry_point" in t.meta and "test" in t.meta for t in tasks)


# ---- settings and resume


@dataclass(frozen=True)
class EvalSettings:
    bench: str
    model_id: str
    n: int
    temperature: float
    top_p: float
    max_new_tokens: int
    seed: int
    stop: tuple[str, ...]


def _check_settings(out_dir: Path, settings: EvalSettings) -> None:
    """Refuse to mix generations of different settings in one output directory."""
    path = out_dir / SETTINGS_FILE
    current = to_jsonable(asdict(settings))
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        diff = {k: (previous.get(k), v) for k, v in current.items() if previous.get(k) != v}
        if diff:
            raise EvalError(
                f"{out_dir} already holds generations with other settings {diff} (old, new); "
                "use another --out directory or delete it"
            )
    else:
        out_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")


def load_complete_records(path: Path, n: int) -> list[Generation]:
    """Records of tasks with all n generations written; drops partial tasks left by a kill.

    Rewrites the file (atomically) when it had to drop anything, so appends stay consistent.
    """
    if not path.exists():
        return []
    records = read_generations(path)
    counts = Counter(r.task_id for r in records)
    too_many = [t for t, c in counts.items() if c > n]
    if too_many:
        raise EvalError(f"{path}: task {too_many[0]!r} has {counts[too_many[0]]} generations, more than n={n}")
    complete = [r for r in records if counts[r.task_id] == n]
    raw_lines = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if line.strip())
    if len(complete) != raw_lines:
        write_jsonl(path, [r.to_json() for r in complete])
    return complete


# ---- judging and testing


def humaneval_program(task: Task, completion: str) -> str:
    """The HumanEval check script: solution, the task's `check`, and the call on the entry point."""
    return f"{task.prefix}{completion}\n\n{task.meta['test']}\n\ncheck({task.meta['entry_point']})\n"


def run_humaneval_test(task: Task, completion: str, *, timeout_s: float = 10.0) -> TestResult:
    """HumanEval `check(entry_point)` inside the sandbox (the completion is untrusted code)."""
    from treeplay.oracle.sandbox import Limits, run_sandboxed

    script = humaneval_program(task, completion)
    limits = Limits(wall_s=timeout_s, cpu_s=max(1, int(timeout_s)), memory_mb=1024)
    run = run_sandboxed([sys.executable, "check.py"], {"check.py": script}, limits)
    passed = run.outcome == "ok" and run.returncode == 0
    tail = run.output_tail[-2000:]
    return TestResult(
        functional_pass=passed,
        security_pass=passed,  # HumanEval has no security tests; func-sec is not reported for it
        outcome=run.outcome,
        tests=(TestCaseOutcome("check", "functionality", passed, "" if passed else (run.reason or tail[-300:])),),
        duration_s=run.duration_s,
        output_tail=tail,
    )


def _judge(programs: list[tuple[str, Task]]) -> list[Verdict]:
    from treeplay.oracle import judge_many

    return list(judge_many([(code, task.language, task) for code, task in programs]))


def _run_tests(pairs: Sequence[tuple[Task, Completion]], humaneval: bool) -> list[TestResult | None]:
    """Sandboxed tests for every generation of tasks that have tests (None for the others)."""
    if humaneval:
        return [run_humaneval_test(t, c.text) for t, c in pairs]
    tested = [i for i, (t, _) in enumerate(pairs) if t.tests]
    results: list[TestResult | None] = [None] * len(pairs)
    if tested:
        from treeplay.oracle.sandbox import run_many

        outcomes = run_many([(pairs[i][0], pairs[i][0].prefix + pairs[i][1].text) for i in tested])
        for i, result in zip(tested, outcomes, strict=True):
            results[i] = result
    return results


def generation_record(
    task: Task, completion: Completion, settings: EvalSettings, verdict: Verdict | None, tests: TestResult | None
) -> Generation:
    return Generation(
        task_id=task.id,
        language=task.language,
        cwe=task.cwe,
        bench=settings.bench,
        model_id=settings.model_id,
        sample_index=completion.index,
        completion=completion.text,
        program=task.prefix + completion.text,
        finish_reason=completion.finish_reason,
        n_tokens=len(completion.token_ids),
        verdict=verdict,
        tests=tests,
    )


# ---- main entry point


def evaluate(
    policy: Policy,
    tasks: Sequence[Task],
    *,
    bench: str,
    out_dir: Path | str,
    config: EvalConfig | None = None,
    seed: int = 0,
    progress: ProgressCallback | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Sample `config.n` completions per task, judge and test them, write generations.jsonl and
    metrics.json. `overrides` are `EvalConfig` fields (n, temperature, top_p, max_new_tokens,
    batch_tasks) over `config` (default: `EvalConfig()`).

    Resumable: tasks whose n generations are already in `out_dir/generations.jsonl` are skipped.
    Returns the metrics dict written to `out_dir/metrics.json`.
    """
    try:
        cfg = replace(config or EvalConfig(), **overrides)
    except (TypeError, ValueError) as exc:
        raise EvalError(str(exc)) from None
    n, temperature, top_p, max_new_tokens = cfg.n, cfg.temperature, cfg.top_p, cfg.max_new_tokens
    out = Path(out_dir)
    humaneval = is_humaneval(tasks)
    settings = EvalSettings(
        bench=bench,
        model_id=policy.model_id,
        n=n,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        stop=HUMANEVAL_STOP if humaneval else (),
    )
    _check_settings(out, settings)
    gen_path = out / GENERATIONS_FILE
    done = {r.task_id for r in load_complete_records(gen_path, n)}
    todo = [t for t in tasks if t.id not in done]
    params = SamplingParams(
        temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, stop=settings.stop, seed=seed
    )
    timings = {"sample_s": 0.0, "judge_s": 0.0, "test_s": 0.0}
    counts_before = _engine_counts(policy)
    total = len(tasks)
    if progress:
        progress(total - len(todo), total)
    for start in range(0, len(todo), cfg.batch_tasks):
        batch = todo[start : start + cfg.batch_tasks]
        requests = [SampleRequest(t, t.prefix, n, params, request_id=t.id) for t in batch]
        t0 = time.perf_counter()
        completions = policy.sample(requests)
        timings["sample_s"] += time.perf_counter() - t0
        by_task: dict[str, list[Completion]] = {t.id: [] for t in batch}
        for completion in completions:
            by_task[completion.request_id].append(completion)
        pairs = [(t, c) for t in batch for c in sorted(by_task[t.id], key=lambda c: c.index)]
        missing = [t.id for t in batch if len(by_task[t.id]) != n]
        if missing:
            raise EvalError(f"policy {policy.model_id} returned != {n} completions for task {missing[0]!r}")
        t0 = time.perf_counter()
        verdicts: list[Verdict | None] = (
            [None] * len(pairs) if humaneval else list(_judge([(t.prefix + c.text, t) for t, c in pairs]))
        )
        timings["judge_s"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        results = _run_tests(pairs, humaneval)
        timings["test_s"] += time.perf_counter() - t0
        append_jsonl(
            gen_path,
            [generation_record(t, c, settings, v, r).to_json()
             for (t, c), v, r in zip(pairs, verdicts, results, strict=True)],
        )
        if progress:
            progress(total - len(todo) + start + len(batch), total)
    engine = {key: value - counts_before.get(key, 0) for key, value in _engine_counts(policy).items()}
    return write_metrics(out, tasks=tasks, settings=settings, timings=timings, engine=engine)


def _engine_counts(policy: Any) -> dict[str, int]:
    """The policy's running token counters (llama.cpp: requests, prompt, cached and generated tokens;
    torch: prefill tokens, decode steps, generated tokens); {} for a policy that keeps none."""
    counts = getattr(policy, "counts", None)
    return {str(k): int(v) for k, v in counts.items()} if isinstance(counts, dict) else {}


def compute_metrics(records: Sequence[Generation], *, humaneval: bool = False, seed: int = 0) -> dict[str, Any]:
    """Metrics of a list of generation records (the content of generations.jsonl)."""
    outcomes = [Outcome.from_generation(r) for r in records]
    metrics = summarise(outcomes, seed=seed)
    if humaneval:  # utility benchmark: pass@k only
        for key in [k for k in metrics if k.startswith("func")]:
            value = metrics.pop(key)
            if key.startswith("func@"):
                metrics["pass@" + key.split("@")[1]] = value
        metrics.pop("per_cwe", None)
    verdicts = [r.verdict for r in records if r.verdict is not None]
    hits = [v.target_hit for v in verdicts if v.status == "vulnerable"]
    if any(h is not None for h in hits):
        metrics["vulnerable_hitting_task_cwe"] = sum(bool(h) for h in hits)
    ran = Counter(name for v in verdicts for name in v.analyzers_run)
    if ran:  # which analyzers judged this bench (programs per analyzer), shown in the report
        metrics["analyzers_run"] = dict(sorted(ran.items()))
    failed = Counter(name for v in verdicts for name in v.failed_analyzers)
    if failed:
        metrics["analyzers_failed"] = dict(sorted(failed.items()))
    findings = Counter(f.cwe or "none" for v in verdicts for f in v.findings)
    if findings:
        metrics["finding_cwes"] = dict(findings.most_common())
    metrics.update(_test_tables(records))
    metrics["metrics_version"] = METRICS_VERSION
    return metrics


def _test_tables(records: Sequence[Generation]) -> dict[str, Any]:
    """Sandbox outcome counts and the oracle-vs-security-test table (see `treeplay.eval.agreement`)."""
    from treeplay.eval.agreement import oracle_vs_tests

    extra: dict[str, Any] = {}
    outcomes = Counter(r.tests.outcome for r in records if r.tests is not None)
    if outcomes:
        extra["test_outcomes"] = dict(outcomes.most_common())
    table = oracle_vs_tests(records)
    if table is not None:
        extra["oracle_vs_test"] = table
    return extra


def write_metrics(
    out_dir: Path,
    *,
    tasks: Sequence[Task],
    settings: EvalSettings,
    timings: dict[str, float] | None = None,
    engine: dict[str, int] | None = None,
) -> dict[str, Any]:
    wanted = {t.id for t in tasks}
    records = [r for r in load_complete_records(out_dir / GENERATIONS_FILE, settings.n) if r.task_id in wanted]
    metrics: dict[str, Any] = {
        "bench": settings.bench,
        "settings": to_jsonable(asdict(settings)),
        "tasks": len(tasks),
        "tasks_evaluated": len({r.task_id for r in records}),
        "generations": len(records),
        "timings_this_run": timings or {},
        # what sampling this run's generations cost the engine: prefill (prompt - cached) vs decode
        "engine_this_run": engine or {},
    }
    metrics.update(compute_metrics(records, humaneval=is_humaneval(tasks)))
    write_text_atomic(out_dir / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics
