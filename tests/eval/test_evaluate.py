"""evaluate(): bench resolution, HumanEval checks in the sandbox, one real run with resume."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from generation_fixtures import generation, generation_json

from treeplay.eval.evaluate import (
    EvalError,
    bench_slug,
    evaluate,
    load_complete_records,
    resolve_bench,
    run_humaneval_test,
)
from treeplay.jsonl import read_jsonl
from treeplay.policy.records import Completion, Policy, SampleRequest, Scored, ScoreRequest
from treeplay.tasks.records import Task


def test_bench_names(shared_data: Path) -> None:
    assert bench_slug("sec-eval:not-trained") == "sec-eval-not-trained"
    assert bench_slug("cweval:/x/y") == "cweval"
    held_out = resolve_bench("sec-eval:not-trained", shared_data)
    assert held_out and all(t.meta.get("group") == "not-trained" for t in held_out)
    everything = resolve_bench("sec-eval", shared_data)
    assert len(everything) > len(held_out)
    assert len({t.id for t in everything}) == len(everything)  # ids keep their group: no collisions
    assert len(resolve_bench("securityeval", shared_data, limit=3)) == 3
    with pytest.raises(EvalError, match="unknown sec-eval group"):
        resolve_bench("sec-eval:nope", shared_data)
    with pytest.raises(EvalError, match="unknown bench"):
        resolve_bench("mbpp", shared_data)


def test_bench_language_filter(shared_data: Path) -> None:
    """`@langs` keeps those languages: sec-eval has 13 + 6 C, 10 JS, 7 Ruby, 6 Go, 5 Java scenarios
    (counted by hand from the scenario folders' file_context.* extensions, jsx counted as JS)."""
    other = resolve_bench("sec-eval@c,go,java,js,rb", shared_data)
    assert len(other) == 47 and not [t for t in other if t.language == "py"]
    assert bench_slug("sec-eval@c,go,java,js,rb") == "sec-eval-c-go-java-js-rb"
    assert bench_slug("sec-eval:trained-new@js") == "sec-eval-trained-new-js"
    assert len(resolve_bench("sec-eval:trained@c", shared_data)) == 13
    with pytest.raises(EvalError, match=r"sec-eval:not-trained@c.*no c tasks \(languages here: py\)"):
        resolve_bench("sec-eval:not-trained@c", shared_data)
    with pytest.raises(EvalError, match="no language after '@'"):
        resolve_bench("sec-eval@", shared_data)


def test_humaneval_checks_run_in_the_sandbox() -> None:
    task = resolve_bench("humaneval", limit=1)[0]
    assert task.golden is not None
    assert run_humaneval_test(task, task.golden).functional_pass
    wrong = run_humaneval_test(task, "    return None\n")
    assert not wrong.functional_pass and wrong.outcome == "crashed"
    hung = run_humaneval_test(task, "    while True:\n        pass\n", timeout_s=2)
    assert hung.outcome == "timeout" and not hung.functional_pass


class CountingPolicy:
    """The real policy, counting which tasks it is asked to sample (to check resume)."""

    def __init__(self, inner: Policy) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.sampled: list[str] = []

    def sample(self, requests: list[SampleRequest]) -> list[Completion]:
        self.sampled += [r.task.id for r in requests]
        return self.inner.sample(requests)

    def score(self, requests: list[ScoreRequest]) -> list[Scored]:
        return self.inner.score(requests)


@pytest.mark.slow
def test_evaluate_embedded_on_securityeval_and_resume(embedded_policy, shared_data: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tasks = resolve_bench("securityeval", shared_data, limit=2)
    out = tmp_path / "eval"
    metrics = evaluate(embedded_policy, tasks, bench="securityeval", n=1, max_new_tokens=48, out_dir=out, seed=0)
    records = list(read_jsonl(out / "generations.jsonl"))
    assert [r["task_id"] for r in records] == [t.id for t in tasks]
    for record, task in zip(records, tasks, strict=True):
        assert record["program"] == task.prefix + record["completion"]
        assert record["verdict"]["status"] in ("secure", "vulnerable", "unparseable")
    assert all(r["verdict"]["analyzers_run"] == ["bandit", "semgrep"] for r in records
               if r["verdict"]["status"] != "unparseable")
    assert metrics["counts"]["generations"] == 2  # strict SPR@1 by hand: test_strict_spr_by_hand
    engine = metrics["engine_this_run"]  # the torch sampler's own counters
    assert sorted(engine) == ["decode_steps", "generated_tokens", "prefill_tokens"]
    assert engine["generated_tokens"] >= sum(r["n_tokens"] for r in records)  # decoded, before stop cuts
    assert engine["prefill_tokens"] > 0
    assert json.loads((out / "metrics.json").read_text())["generations"] == 2

    # Simulate a kill while the second task was being written: resume redoes only that task.
    lines = (out / "generations.jsonl").read_text().splitlines(keepends=True)
    (out / "generations.jsonl").write_text(lines[0] + lines[1][: len(lines[1]) // 2])
    counting = CountingPolicy(embedded_policy)
    evaluate(counting, tasks, bench="securityeval", n=1, max_new_tokens=48, out_dir=out, seed=0)
    assert counting.sampled == [tasks[1].id]
    assert [r.task_id for r in load_complete_records(out / "generations.jsonl", 1)] == [t.id for t in tasks]
    # Mixing settings in one directory is refused.
    with pytest.raises(EvalError, match="other settings"):
        evaluate(embedded_policy, tasks, bench="securityeval", n=1, max_new_tokens=64, out_dir=out, seed=0)


def test_cweval_func_sec_from_sandboxed_tests(fixtures_dir: Path) -> None:
    from treeplay.eval.evaluate import compute_metrics
    from treeplay.oracle.sandbox import run_task_tests

    tasks = [t for t in resolve_bench(f"cweval:{fixtures_dir / 'cweval'}") if t.language == "py"][:2]
    assert len(tasks) == 2 and all(t.tests and t.golden for t in tasks)
    records = []
    for task in tasks:  # per task: the reference solution and a body that returns None
        for completion in (task.golden or "", "    return None\n"):
            result = run_task_tests(task, task.prefix + completion)
            records.append(replace(generation(task.id, cwe=list(task.cwe), completion=completion), tests=result))
    metrics = compute_metrics(records)
    assert metrics["func@1"]["value"] == pytest.approx(0.5)
    assert metrics["func-sec@1"]["value"] == pytest.approx(0.5)
    assert "func-sec@5" not in metrics  # k in (1, 5, 10), only up to the samples per task
    assert "spr@1" not in metrics  # nothing was judged statically


def test_resume_drops_partial_tasks_and_pins_settings(tmp_path: Path) -> None:
    from treeplay.eval.evaluate import EvalSettings, _check_settings

    path = tmp_path / "generations.jsonl"
    rows = [generation_json("a", sample_index=0), generation_json("a", sample_index=1), generation_json("b", sample_index=0)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(text + '{"task_id": "b", "sample_in')  # killed while writing b's second sample
    assert [(r.task_id, r.sample_index) for r in load_complete_records(path, 2)] == [("a", 0), ("a", 1)]
    assert path.read_text() == "".join(json.dumps(r) + "\n" for r in rows[:2])  # b's partial records are gone: a resume redoes b once
    with pytest.raises(EvalError, match="more than n=1"):
        load_complete_records(path, 1)
    settings = EvalSettings("securityeval", "embedded", 1, 0.2, 0.95, 64, 0, ())
    _check_settings(tmp_path, settings)
    _check_settings(tmp_path, settings)  # same settings: fine
    with pytest.raises(EvalError, match="other settings"):
        _check_settings(tmp_path, EvalSettings("securityeval", "embedded", 1, 0.8, 0.95, 64, 0, ()))


class ScriptedPolicy:
    """Returns hand-written completions (one per task id) so the expected metrics can be worked out
    by hand; judging and the metrics are the real code."""

    model_id = "scripted"

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def sample(self, requests: list[SampleRequest]) -> list[Completion]:
        return [Completion(r.request_id, 0, self.texts[r.task.id], (1,), (0.0,), "stop") for r in requests]

    def score(self, requests: list[ScoreRequest]) -> list[Scored]:
        raise NotImplementedError


def test_strict_spr_by_hand(tmp_path: Path) -> None:
    # issue 14 items 7, 9, 11: hand-written expectations; empty = trivial bodies (docstring + pass,
    # return None) are neither secure nor vulnerable; records keep the analyzers that ran
    cases = {
        "vuln": ("import os\n\ndef run(cmd):\n", "    os.system('ls ' + cmd)\n"),
        "safe": ("def add(a, b):\n", "    return a + b\n"),
        "docstring": ("def f(x):\n", '    """Do it."""\n    pass\n'),
        "return-none": ("def g(x):\n", "    # later\n    return None\n"),
        "broken": ("def h(:\n", "    return 1\n"),
    }
    tasks = [Task(id=k, language="py", cwe=("CWE-78",), instruction="", prefix=p) for k, (p, _) in cases.items()]
    policy = ScriptedPolicy({k: c for k, (_, c) in cases.items()})
    metrics = evaluate(policy, tasks, bench="hand", max_new_tokens=8, out_dir=tmp_path, batch_tasks=8)
    records = {r["task_id"]: r for r in read_jsonl(tmp_path / "generations.jsonl")}
    assert [records[k]["verdict"]["status"] for k in cases] == [
        "vulnerable", "secure", "secure", "secure", "unparseable"]
    assert records["vuln"]["verdict"]["analyzers_run"] == ["bandit", "semgrep"]
    assert metrics["spr@1"]["value"] == pytest.approx(1 / 2)  # vuln, safe
    assert metrics["strict_spr@1"]["value"] == pytest.approx(1 / 5)  # only "safe" passes
    assert metrics["empty_share"]["value"] == pytest.approx(2 / 5)
    assert metrics["vulnerable_attempted_share"]["value"] == pytest.approx(1 / 2)
    assert metrics["insecure_strict_share"]["value"] == pytest.approx(4 / 5)
    assert metrics["counts"]["attempted"] == 2 and metrics["counts"]["empty"] == 2
    assert metrics["analyzers_run"] == {"bandit": 4, "semgrep": 4}


class TokenCountingPolicy(ScriptedPolicy):
    """A scripted policy that keeps llama.cpp-style token counters: each request costs a 10-token prompt,
    4 of them cached, and one generated token per character of its completion."""

    def __init__(self, texts: dict[str, str]) -> None:
        super().__init__(texts)
        # counters already in use when this evaluation starts (the engine served earlier work)
        self.counts = {"requests": 7, "prompt_tokens": 70, "cached_tokens": 0, "generated_tokens": 100}

    def sample(self, requests: list[SampleRequest]) -> list[Completion]:
        completions = super().sample(requests)
        for completion in completions:
            self.counts["requests"] += 1
            self.counts["prompt_tokens"] += 10
            self.counts["cached_tokens"] += 4
            self.counts["generated_tokens"] += len(completion.text)
        return completions


def test_metrics_record_what_this_runs_sampling_cost_the_engine(tmp_path: Path) -> None:
    texts = {"a": "    return 1\n", "b": "    return x + 2\n"}  # 13 and 17 characters
    tasks = [Task(id=k, language="py", cwe=("CWE-78",), instruction="", prefix="def f(x):\n") for k in texts]
    metrics = evaluate(TokenCountingPolicy(texts), tasks, bench="hand", max_new_tokens=8, out_dir=tmp_path,
                       batch_tasks=1)
    # only this evaluation's two requests, not the 7 the engine had served before it
    assert metrics["engine_this_run"] == {"requests": 2, "prompt_tokens": 20, "cached_tokens": 8,
                                          "generated_tokens": 30}
    assert json.loads((tmp_path / "metrics.json").read_text())["engine_this_run"]["prompt_tokens"] == 20
    # a policy without counters (the scripted one) records none
    other = evaluate(ScriptedPolicy(texts), tasks, bench="hand", max_new_tokens=8, out_dir=tmp_path / "o")
    assert other["engine_this_run"] == {}
