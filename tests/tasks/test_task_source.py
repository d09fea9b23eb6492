"""`TaskSource` (treeplay.tasks.config): the `train_tasks:` section of a run config and its filters."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from treeplay.pipeline import ConfigError, load_config
from treeplay.tasks.config import TaskSource


def _task(id: str, language: str, cwe: str, *, spans: bool = True) -> dict[str, object]:
    # golden differs from vulnerable in [0, 3) unless spans=False (a pair without a diff: dropped)
    return {"id": id, "language": language, "cwe": [cwe], "instruction": "do it", "prefix": "x = ",
            "golden": "f(a)\n", "vulnerable": "g(a)\n", "changed_spans": [[0, 3]] if spans else []}


@pytest.fixture
def tasks_file(tmp_path: Path) -> Path:
    rows = [_task("a1", "py", "CWE-89"), _task("a2", "py", "CWE-89"), _task("b1", "js", "CWE-79"),
            _task("c1", "py", "CWE-22"), _task("a3", "py", "CWE-89", spans=False), _task("c2", "py", "CWE-22")]
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_filters_order_and_limit(tasks_file: Path) -> None:
    assert [t.id for t in TaskSource(str(tasks_file)).load(tasks_file)] == ["a1", "a2", "b1", "c1", "c2"]
    assert [t.id for t in TaskSource(str(tasks_file), language="py", limit=3).load(tasks_file)] == ["a1", "a2", "c1"]
    assert [t.id for t in TaskSource(str(tasks_file), exclude_language="js", cwe="CWE-22").load(tasks_file)] == [
        "c1", "c2"]
    robin = TaskSource(str(tasks_file), order="round-robin-cwe", limit=4)
    assert [t.id for t in robin.load(tasks_file)] == ["a1", "b1", "c1", "a2"]


def test_run_config_section_builds_the_task_source(tmp_path: Path, tasks_file: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"name: x\ntrain_tasks: {{path: {tasks_file}, language: py, limit: 2}}\n")
    config = load_config(path)
    assert config.task_source() == TaskSource(str(tasks_file), language="py", limit=2)
    dumped = config.model_dump()["train_tasks"]  # the run's config.yaml lists every field, as before
    assert list(dumped) == ["path", "format", "language", "cwe", "split", "exclude_language", "limit", "order"]
    assert dumped["order"] == "file" and dumped["format"] is None


@pytest.mark.parametrize(("section", "message"), [
    ("{path: a.jsonl, lang: py}", r"run.yaml: line 2: field train_tasks.lang: Extra inputs are not permitted"),
    ("{language: py}", r"run.yaml: line 2: field train_tasks.path: Field required"),
    ("{path: a.jsonl, limit: 0}", r"run.yaml: line 2: field train_tasks.limit: Input should be greater than or equal to 1"),
    ("{path: a.jsonl, order: random}", r"run.yaml: line 2: field train_tasks.order: Input should be 'file' or"),
])
def test_bad_train_tasks_section_is_named(tmp_path: Path, section: str, message: str) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(f"name: x\ntrain_tasks: {section}\n")
    with pytest.raises(ConfigError, match=message):
        load_config(path)
