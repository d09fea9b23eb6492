from __future__ import annotations

from treeplay.tasks.records import Task
from treeplay.train.reference_pairs import first_divergence_line_start, reference_node_pair


def test_pair_starts_at_the_line_of_the_first_difference() -> None:
    golden = "def f(q):\n    cur = db.cursor()\n    cur.execute('SELECT %s', (q,))\n"
    vulnerable = "def f(q):\n    cur = db.cursor()\n    cur.execute('SELECT ' + q)\n"
    task = Task(id="t", language="py", cwe=("CWE-89",), instruction="query", prefix="import db\n",
                golden=golden, vulnerable=vulnerable)
    pair = reference_node_pair(task)
    assert pair is not None
    assert pair.prefix == "import db\ndef f(q):\n    cur = db.cursor()\n"
    assert pair.chosen == "    cur.execute('SELECT %s', (q,))\n"
    assert pair.rejected == "    cur.execute('SELECT ' + q)\n"
    assert pair.cwe == "CWE-89" and pair.mode == "golden-vs-branch"
    assert first_divergence_line_start("same", "same") is None
    assert reference_node_pair(Task(id="u", language="py", cwe=(), instruction="", prefix="", golden="x")) is None
