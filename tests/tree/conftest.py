"""Hand-built records for the tree stage's pure-logic tests (no model, no analyzers)."""

from __future__ import annotations

import pytest
from _tree_fixtures import GOLDEN, PREFIX, VULNERABLE

from treeplay.tasks.records import AnnotatedNode, Task


def _changed_span() -> tuple[int, int]:
    start = GOLDEN.index('"SELECT')
    start += len('"SELECT * FROM users WHERE name = ')
    return (start, start + 6)


@pytest.fixture()
def sql_task() -> Task:
    return Task(
        id="t-sql",
        language="py",
        cwe=("CWE-89",),
        instruction="Fetch a user by name.",
        prefix=PREFIX,
        golden=GOLDEN,
        vulnerable=VULNERABLE,
        changed_spans=(_changed_span(),),
        annotated_nodes=(
            AnnotatedNode(line='cur.execute("SELECT * FROM users WHERE name = ?", (name,))', cwe="CWE-89"),
        ),
    )


@pytest.fixture()
def prompt_only_task() -> Task:
    return Task(id="t-open", language="py", cwe=("CWE-78",), instruction="Run ls.", prefix="import os\n")
