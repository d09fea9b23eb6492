"""Loaders on small fixtures written here and on the real files in ../shared/data."""

import json
from collections import Counter
from pathlib import Path

import pytest

from treeplay.tasks import TaskFormatError, detect_format, filter_tasks, load_tasks
from treeplay.tasks.dir_loaders import split_cweval_source
from treeplay.tasks.loaders import diff_spans, parse_risk_node_annotation

BEFORE = "def get(db, name):\n    return db.execute('SELECT * FROM u WHERE n=%s' % name)\n"
AFTER = "def get(db, name):\n    return db.execute('SELECT * FROM u WHERE n=%s', (name,))\n"


def safecoder_row(**overrides):
    start = AFTER.index(", (name,)")
    row = {
        "func_name": "get",
        "func_src_before": BEFORE,
        "func_src_after": AFTER,
        "line_changes": {"deleted": [], "added": []},
        "char_changes": {"deleted": [], "added": [{"char_start": start, "char_end": start + 9, "chars": ", (name,)"}]},
        "file_name": "app/db.py",
        "vul_type": "cwe-089",
        "description": "Fetch a user by name.",
    }
    row.update(overrides)
    return row


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_safecoder_fixture_golden_vulnerable_and_spans(tmp_path):
    path = write_jsonl(tmp_path / "mini.train.jsonl", [safecoder_row()])
    [task] = load_tasks(path)
    assert detect_format(path) == "safecoder"
    assert task.language == "py" and task.cwe == ("CWE-89",)
    assert task.golden == AFTER and task.vulnerable == BEFORE
    assert [task.golden[s:e] for s, e in task.changed_spans] == [", (name,)"]
    assert task.split == ("train",)
    assert task.id == "mini.train:1"


def test_safecoder_bad_row_names_file_line_and_field(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [safecoder_row(), safecoder_row(file_name="x.cobol")])
    with pytest.raises(TaskFormatError) as info:
        load_tasks(path, format="safecoder")
    message = str(info.value)
    assert "bad.jsonl:line 2" in message and "'file_name'" in message


def test_missing_field_and_invalid_json_are_reported_and_skippable(tmp_path):
    row = safecoder_row()
    del row["func_src_after"]
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(safecoder_row()) + "\n" + json.dumps(row) + "\n{not json\n")
    with pytest.raises(TaskFormatError, match=r"broken.jsonl:line 2: field 'func_src_after': missing"):
        load_tasks(path, format="safecoder")
    errors: list[TaskFormatError] = []
    tasks = load_tasks(path, format="safecoder", errors=errors)
    assert len(tasks) == 1
    assert [e.where for e in errors] == ["line 2", "line 3"]


def test_rows_without_char_changes_get_spans_from_a_diff(tmp_path):
    row = safecoder_row()
    del row["char_changes"]
    [task] = load_tasks(write_jsonl(tmp_path / "nodiff.jsonl", [row]), format="safecoder")
    assert task.changed_spans
    assert all(s >= AFTER.index("n=%s") for s, _ in task.changed_spans)
    assert diff_spans("abc", "abc") == []


def test_securityeval_jsonl_fixture(tmp_path):
    prompt = "import os\n\ndef run(cmd):\n    '''Run the user's command.'''\n"
    path = write_jsonl(
        tmp_path / "se.jsonl",
        [{"ID": "CWE-078_author_1.py", "Prompt": prompt, "Insecure_code": prompt + "    os.system(cmd)\n"}],
    )
    [task] = load_tasks(path)
    assert task.cwe == ("CWE-78",) and task.prefix == prompt
    assert task.vulnerable == "    os.system(cmd)\n"
    assert "Run the user's command." in task.instruction


def test_scenario_dir_fixture(tmp_path):
    scenario = tmp_path / "not-trained" / "cwe-918" / "0-py"
    scenario.mkdir(parents=True)
    (scenario / "info.json").write_text(json.dumps({"language": "py", "cwe": "CWE-918", "description": "fetch"}))
    (scenario / "file_context.py").write_text("import requests")  # no trailing newline, as in the data
    (scenario / "func_context.py").write_text("def f(url):\n")
    [task] = load_tasks(tmp_path)
    assert task.prefix == "import requests\ndef f(url):\n"
    assert "heldout-cwe" in task.split and task.id == "sec-eval/not-trained/cwe-918/0-py"


def test_scenario_without_func_context_is_an_error(tmp_path):
    scenario = tmp_path / "trained" / "cwe-079" / "0-py"
    scenario.mkdir(parents=True)
    (scenario / "info.json").write_text(json.dumps({"language": "py", "cwe": "CWE-079"}))
    with pytest.raises(TaskFormatError, match="func_context"):
        load_tasks(tmp_path, format="sec-eval")


def test_cweval_layout_fixture(tmp_path):
    core = tmp_path / "benchmark" / "core" / "py"
    core.mkdir(parents=True)
    source = "def f(x):\n    '''Return x.'''\n    # BEGIN SOLUTION\n    return x\n"
    (core / "cwe_020_0_task.py").write_text(source)
    (core / "cwe_020_0_test.py").write_text("def test_x():\n    pass\n")
    [task] = load_tasks(tmp_path)
    assert task.prefix.endswith("# BEGIN SOLUTION\n") and task.golden == "    return x\n"
    assert task.tests == str(core / "cwe_020_0_test.py")
    assert task.cwe == ("CWE-20",) and task.id == "cweval/py/cwe_020_0"
    assert split_cweval_source("no marker") is None


def test_annotation_parser():
    text = "```\n[[1]]\n[Code_Line]  x = eval(s)\n[CWE_ID]CWE-95\n[Description]Eval.\n\n[[2]]\n[Code_Line] y\n[CWE_ID]n/a\n```"
    first, second = parse_risk_node_annotation(text)
    assert (first.line, first.cwe, first.description) == ("x = eval(s)", "CWE-95", "Eval.")
    assert (second.line, second.cwe) == ("y", None)


def test_normalised_roundtrip_and_filters(tmp_path):
    path = write_jsonl(tmp_path / "mini.jsonl", [safecoder_row(), safecoder_row(file_name="a.js", vul_type="cwe-79")])
    tasks = load_tasks(path)
    out = write_jsonl(tmp_path / "tasks.jsonl", [t.to_dict() for t in tasks])
    assert detect_format(out) == "tasks"
    assert load_tasks(out) == tasks
    assert [t.language for t in filter_tasks(tasks, language="js")] == ["js"]
    assert len(filter_tasks(tasks, cwe="89,79")) == 2
    assert filter_tasks(tasks, cwe="CWE-79")[0].language == "js"
    assert len(load_tasks(out, limit=1)) == 1


def test_unknown_layout_is_a_clear_error(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"foo": 1}])
    with pytest.raises(ValueError, match="unknown record layout"):
        load_tasks(path)


# --- real data --------------------------------------------------------------------------------


def test_real_safecoder_train_and_val(shared_data):
    train = load_tasks(shared_data / "safecoder" / "sec-new-desc.train.jsonl")
    val = load_tasks(shared_data / "safecoder" / "sec-new-desc.val.jsonl")
    assert (len(train), len(val)) == (421, 44)
    assert Counter(t.language for t in train)["py"] == 132
    for task in train:
        assert task.golden is not None and task.vulnerable is not None and task.cwe
        # pure deletions get an empty span where the text was removed; only rows whose two
        # versions are identical (a whitespace-only commit in the data) have no span
        assert task.changed_spans or task.golden.strip() == task.vulnerable.strip()


def test_pure_deletion_fix_gets_an_empty_span_where_code_was_removed(shared_data):
    [task] = load_tasks(shared_data / "safecoder" / "sec-new-desc.train.jsonl", limit=1, cwe="502", language="py")
    pure = next(t for t in load_tasks(shared_data / "safecoder" / "sec-new-desc.train.jsonl") if t.id.endswith(":27"))
    (start, end), *_ = pure.changed_spans
    assert start == end
    assert "pickle.loads" in pure.vulnerable and "pickle.loads" not in pure.golden
    assert pure.vulnerable.startswith(pure.golden[:start])
    assert task.cwe == ("CWE-502",)


def test_real_scenarios_all_81_load_with_heldout_split(shared_data):
    tasks = load_tasks(shared_data / "safecoder" / "sec_eval")
    assert len(tasks) == 81
    groups = Counter(t.meta["group"] for t in tasks)
    assert groups == {"trained": 24, "trained-new": 42, "not-trained": 15}
    heldout = load_tasks(shared_data / "safecoder" / "sec_eval", split="heldout-cwe")
    assert len(heldout) == 15 and all(t.meta["group"] == "not-trained" for t in heldout)


def test_real_securityeval(shared_data):
    tasks = load_tasks(shared_data / "securityeval" / "securityeval-121.json")
    assert len(tasks) == 121 and {t.language for t in tasks} == {"py"}
    assert sum(t.vulnerable is not None for t in tasks) > 100


def test_real_annotated_nodes(shared_data):
    tasks = load_tasks(shared_data / "tsp" / "sec-new-desc_gpt4o-nodes.json")
    assert len(tasks) == 421
    with_nodes = [t for t in tasks if t.annotated_nodes]
    assert len(with_nodes) > 400
    # annotated lines are (mostly) lines of the golden code
    found = sum(any(n.line.strip() in (t.golden or "") for n in t.annotated_nodes) for t in with_nodes)
    assert found / len(with_nodes) > 0.8


def test_real_multilang_and_humaneval(shared_data):
    multi = load_tasks(shared_data / "tsp" / "rq2-multilang-300.json")
    assert len(multi) == 300 and len({t.language for t in multi}) >= 5
    humaneval = load_tasks("humaneval")
    assert len(humaneval) == 164 and humaneval[0].meta["entry_point"]


# issue 14 item 4: auto-detect names the first offending line, like --format does
def test_detect_format_names_the_offending_line(tmp_path: Path) -> None:
    bad = tmp_path / "rows.jsonl"
    bad.write_text("\n{not json\n", encoding="utf-8")
    with pytest.raises(TaskFormatError) as err:
        load_tasks(bad)
    assert str(err.value).startswith(f"{bad}:line 2: ")
    unknown = tmp_path / "odd.jsonl"
    unknown.write_text('{"foo": 1, "bar": 2}\n', encoding="utf-8")
    with pytest.raises(TaskFormatError) as err:
        detect_format(unknown)
    assert str(err.value) == f"{unknown}:line 1: unknown record layout with fields ['bar', 'foo']; pass --format"
    scalar = tmp_path / "scalar.jsonl"
    scalar.write_text("[1, 2]\n", encoding="utf-8")
    with pytest.raises(TaskFormatError, match=r"scalar.jsonl:line 1: "):
        detect_format(scalar)
