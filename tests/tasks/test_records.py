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
