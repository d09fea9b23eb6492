"""Hand-built code shared by the tree tests."""

from __future__ import annotations

from treeplay.tree.offsets import prefix_hash
from treeplay.tree.records import Branch, Node, Tree

PREFIX = "import sqlite3\n\ndef get_user(db, name):\n"
GOLDEN = (
    "    cur = db.cursor()\n"
    '    cur.execute("SELECT * FROM users WHERE name = ?", (name,))\n'
    "    return cur.fetchone()\n"
)
VULNERABLE = (
    "    cur = db.cursor()\n"
    "    cur.execute(\"SELECT * FROM users WHERE name = '%s'\" % name)\n"
    "    return cur.fetchone()\n"
)

NODE_AT = GOLDEN.index("    cur.execute")


def _b(
    node: str, prefix: str, completion: str, label: str, finish: str = "stop", ids: tuple[int, ...] = (1,)
) -> Branch:
    return Branch(
        node_id=node,
        prefix=prefix,
        completion=completion,
        token_ids=ids,
        logprobs=tuple(-0.1 * i for i in range(len(ids))),
        label=label,  # type: ignore[arg-type]
        cwe="CWE-89" if label == "vulnerable" else None,
        first_flagged_line=5 if label == "vulnerable" else None,
        finish_reason=finish,
    )


def hand_built_tree() -> Tree:
    """Root + one trunk node (diff+oracle) with every kind of branch label."""
    trunk_prefix = PREFIX + GOLDEN[:NODE_AT]
    nodes = (
        Node("root", None, None, 0, 0, "root", prefix_hash(PREFIX)),
        Node("n1", None, None, NODE_AT, 6, "diff+oracle", prefix_hash(trunk_prefix)),
    )
    branches = (
        _b("root", PREFIX, "    return db.execute(q % name)\n", "vulnerable", ids=(7, 8)),
        _b("root", PREFIX, "    return None\n", "secure", ids=(9,)),
        _b("root", PREFIX, "    return (\n", "unparseable", finish="length"),
        _b("n1", trunk_prefix, "    cur.execute('%s' % name)\n", "vulnerable", ids=(3, 4, 5)),
        _b("n1", trunk_prefix, "    cur.execute(q, (name,))\n", "secure", ids=(6,)),
        _b("n1", trunk_prefix, "    cur.execute(q, (name,)\n", "unparseable"),  # stopped but broken
        _b("n1", trunk_prefix, "    cur.execute(q\n", "unparseable", finish="length"),  # cut by budget
        _b("n1", trunk_prefix, "    cur.execute(q, [name])\n", "nonfunctional"),
    )
    return Tree(
        task_id="t-sql",
        golden=GOLDEN,
        golden_source="task",
        nodes=nodes,
        branches=branches,
        round=1,
        model_id="embedded",
        config_hash="abc",
        golden_scores={
            "root": {"token_ids": [10, 11, 12], "logprobs": [-1.0, -2.0, -3.0]},
            "n1": {"token_ids": [11, 12], "logprobs": [-2.0, -3.0]},
        },
    )
