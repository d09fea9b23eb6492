"""`safecoder:train|val`: SafeCoder's own distribution as an in-distribution diagnostic bench."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from treeplay.eval.evaluate import EvalError, bench_slug, resolve_bench


def _row(name: str, lang: str, cwe: str, *, fixed: bool = True) -> dict[str, object]:
    before = f"def {name}(x):\n    return run(x)\n"
    after = f"def {name}(x):\n    return run(quote(x))\n" if fixed else before
    return {"func_name": name, "func_src_before": before, "func_src_after": after,
            "file_name": f"src/{name}.{lang}", "vul_type": cwe, "description": f"Write {name}."}


def _write(root: Path, split: str, rows: list[dict[str, object]]) -> None:
    (root / "safecoder").mkdir(parents=True, exist_ok=True)
    with (root / "safecoder" / f"sec-new-desc.{split}.jsonl").open("w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    # file order: js79, py79, py89a, py89b, py22, and a py row whose fix changes nothing
    _write(tmp_path, "train", [
        _row("js79", "js", "cwe-079"), _row("py79", "py", "cwe-079"), _row("py89a", "py", "cwe-089"),
        _row("py89b", "py", "cwe-089"), _row("py22", "py", "cwe-022"), _row("same", "py", "cwe-022", fixed=False),
    ])
    _write(tmp_path, "val", [_row("v1", "py", "cwe-502"), _row("v2", "js", "cwe-502")])
    return tmp_path


def _names(tasks) -> list[str]:
    return [t.golden.split("(")[0].removeprefix("def ") for t in tasks]


def test_python_tasks_in_the_training_order(root: Path) -> None:
    # round-robin over the Python rows' CWEs (079, 089, 022 by first appearance), as
    # `train_tasks: {language: py, order: round-robin-cwe}` loads them; filtering the languages
    # after an all-language round-robin would give py89a, py22, py79, py89b instead
    assert _names(resolve_bench("safecoder:train@py", root)) == ["py79", "py89a", "py22", "py89b"]
    assert _names(resolve_bench("safecoder:train@py", root, limit=2)) == ["py79", "py89a"]


def test_train_from_n_is_the_rows_a_run_with_limit_n_never_saw(root: Path) -> None:
    # the training order is py79, py89a, py22, py89b: a run with limit 2 trained on the first two
    assert _names(resolve_bench("safecoder:train-from-2@py", root)) == ["py22", "py89b"]
    assert _names(resolve_bench("safecoder:train-from-1@py", root, limit=2)) == ["py89a", "py22"]
    assert bench_slug("safecoder:train-from-36@py") == "safecoder-train-from-36-py"
    with pytest.raises(EvalError, match="skips 4 of only 4 SafeCoder train tasks"):
        resolve_bench("safecoder:train-from-4@py", root)
    with pytest.raises(EvalError, match="or safecoder:train-from-<N>"):
        resolve_bench("safecoder:train-from-x@py", root)


def test_all_languages_and_the_val_split(root: Path) -> None:
    assert _names(resolve_bench("safecoder:train", root)) == ["js79", "py89a", "py22", "py79", "py89b"]
    tasks = resolve_bench("safecoder:val@py", root)
    assert _names(tasks) == ["v1"]
    assert (tasks[0].instruction, tasks[0].prefix, tasks[0].language) == ("Write v1.", "", "py")


def test_bad_names_fail_early(root: Path, tmp_path: Path) -> None:
    with pytest.raises(EvalError, match="expected safecoder:train or safecoder:val"):
        resolve_bench("safecoder:test", root)
    with pytest.raises(EvalError, match=r"SafeCoder val rows not found at .*sec-new-desc\.val\.jsonl"):
        resolve_bench("safecoder:val", tmp_path / "empty")


def test_slug() -> None:
    assert bench_slug("safecoder:train@py") == "safecoder-train-py"


def test_real_rows_match_the_training_tasks(shared_data: Path) -> None:
    from treeplay.tasks.config import TaskSource

    path = shared_data / "safecoder" / "sec-new-desc.train.jsonl"
    trained = TaskSource(path=str(path), language="py", limit=12, order="round-robin-cwe").load(path)
    bench = resolve_bench("safecoder:train@py", shared_data, limit=12)
    assert [t.id for t in bench] == [t.id for t in trained]
    assert len(resolve_bench("safecoder:val@py", shared_data)) == 14
    unseen = resolve_bench("safecoder:train-from-12@py", shared_data)
    assert len(unseen) == 132 - 12  # the 132 Python rows of the train split
    assert not {t.id for t in unseen} & {t.id for t in trained}
