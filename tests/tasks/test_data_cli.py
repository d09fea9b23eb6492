import json

from typer.testing import CliRunner

from treeplay.cli import app
from treeplay.tasks import load_tasks

runner = CliRunner()


def test_data_stats_on_real_safecoder_train(shared_data):
    result = runner.invoke(app, ["data", "stats", str(shared_data / "safecoder" / "sec-new-desc.train.jsonl"), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)
    assert stats["tasks"] == 421
    assert stats["language"]["py"] == 132
    assert stats["cwe"]["CWE-79"] == 69


def test_data_stats_table_names_cwes(shared_data):
    result = runner.invoke(app, ["data", "stats", str(shared_data / "securityeval" / "securityeval-121.json")])
    assert result.exit_code == 0
    assert "121 tasks" in result.stdout
    assert "Deserialization of Untrusted Data" in result.stdout  # CWE-502, from the cwe2 catalogue


def test_data_export_then_filters(shared_data, tmp_path):
    out = tmp_path / "tasks.jsonl"
    result = runner.invoke(
        app,
        ["data", "export", str(shared_data / "safecoder" / "sec_eval"), "--split", "heldout-cwe", "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    tasks = load_tasks(out)
    assert len(tasks) == 15 and all("heldout-cwe" in t.split for t in tasks)


def test_bad_input_exit_code_and_skip_bad(tmp_path):
    path = tmp_path / "rows.jsonl"
    good = {"ID": "CWE-089_a.py", "Prompt": "def f():\n", "Insecure_code": "def f():\n    pass\n"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"ID": "CWE-089_b.py"}) + "\n")
    result = runner.invoke(app, ["data", "stats", str(path), "--json"])
    assert result.exit_code == 2
    assert "rows.jsonl:line 2" in result.stderr and "'Prompt'" in result.stderr
    result = runner.invoke(app, ["data", "stats", str(path), "--json", "--skip-bad"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["tasks"] == 1
    assert "skipped" in result.stderr
