import json

import pytest

from treeplay.tasks import Task, normalise_cwe


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("cwe-079", "CWE-79"), ("CWE_89", "CWE-89"), ("79", "CWE-79"), (1333, "CWE-1333"), (" CWE-022 ", "CWE-22")],
)
def test_normalise_cwe(raw, expected):
    assert normalise_cwe(raw) == expected


@pytest.mark.parametrize("raw", ["", "CWE-", "XSS", "cwe-79a"])
def test_normalise_cwe_rejects_non_ids(raw):
    with pytest.raises(ValueError, match="not a CWE"):
        normalise_cwe(raw)


def test_task_roundtrip_through_dict():
    task = Task(
        id="t1",
        language="py",
        cwe=("CWE-89",),
        instruction="query a user",
        prefix="def f(db, name):\n",
        golden="    return db.execute('select 1 where n=?', (name,))\n",
        vulnerable="    return db.execute(f'select 1 where n={name}')\n",
        changed_spans=((4, 10),),
        split=("train",),
        meta={"k": 1},
    )
    again = Task.from_dict(task.to_dict())
    assert again == task
    assert again.meta == {"k": 1}
    assert again.golden_solution == task.prefix + task.golden


def test_task_rejects_unknown_language_and_bad_span():
    with pytest.raises(ValueError, match="unknown language"):
        Task(id="x", language="cobol", cwe=(), instruction="", prefix="")
    with pytest.raises(ValueError, match="outside golden"):
        Task(id="x", language="py", cwe=(), instruction="", prefix="", golden="ab", changed_spans=((1, 5),))


def test_trailing_indentation_moves_from_prefix_into_the_references() -> None:
    from treeplay.tasks.records import align_prefix_to_line

    task = Task(
        id="t", language="py", cwe=("CWE-89",), instruction="i",
        prefix="def f(q):\n    '''doc'''\n    ",
        golden="return run(q, safe=True)\n", vulnerable="return run(q)\n",
        changed_spans=((12, 23),),  # ", safe=True" in golden
    )
    aligned = align_prefix_to_line(task)
    assert aligned.prefix == "def f(q):\n    '''doc'''\n"
    assert aligned.golden == "    return run(q, safe=True)\n"
    assert aligned.vulnerable == "    return run(q)\n"
    assert aligned.changed_spans == ((16, 27),)
    assert aligned.golden[16:27] == ", safe=True"
    assert aligned.prefix + aligned.golden == task.prefix + task.golden


def test_prefixes_ending_in_code_or_a_newline_are_kept() -> None:
    from treeplay.tasks.records import align_prefix_to_line

    for prefix in ("def f():\n", "x = 1\n    y", "x = 1"):
        task = Task(id="t", language="py", cwe=(), instruction="", prefix=prefix, golden=" z\n")
        assert align_prefix_to_line(task) is task


def test_loaded_securityeval_prompts_end_at_a_line_boundary(shared_data) -> None:  # type: ignore[no-untyped-def]
    from treeplay.tasks import load_tasks

    tasks = load_tasks(shared_data / "securityeval" / "securityeval-121.json")
    assert len(tasks) == 121
    import re

    assert not [t.id for t in tasks if re.search(r"\n[ \t]+$", t.prefix)]
    raw = json.loads((shared_data / "securityeval" / "securityeval-121.json").read_text())
    indented = {row["ID"] for row in raw if re.search(r"\n[ \t]+$", row["Prompt"])}
    assert len(indented) > 60  # most prompts end with "    " after a docstring
    moved = [t for t in tasks if t.id.endswith(tuple(indented))]
    assert moved and all(t.prefix.endswith("\n") for t in moved)
