from __future__ import annotations

import pytest
from _tree_fixtures import GOLDEN, PREFIX

from treeplay.policy.records import Scored
from treeplay.tasks.records import Task
from treeplay.tree.records import Branch
from treeplay.tree.strategies import (
    STRATEGIES,
    NodeProposal,
    StrategyContext,
    find_line,
    merge_proposals,
    parse_llm_nodes,
    parse_strategies,
    propose_nodes,
    top_spaced,
)


def _word_boundaries(text: str) -> tuple[int, ...]:
    """Token starts of a whitespace-led tokenization (like BPE's ' word' tokens)."""
    starts = [0]
    for i in range(1, len(text)):
        if text[i] in " \n(" and text[i - 1] not in " \n":
            starts.append(i)
    return tuple(starts)


def _scored(text: str, entropies: list[float] | None = None) -> Scored:
    offsets = _word_boundaries(text)
    return Scored(
        request_id="0",
        token_ids=tuple(range(len(offsets))),
        logprobs=tuple(-1.0 for _ in offsets),
        entropies=tuple(entropies if entropies is not None else [0.5] * len(offsets)),
        char_offsets=offsets,
    )


def _branch(completion: str, label: str, line: int | None = None) -> Branch:
    return Branch(
        node_id="root",
        prefix=PREFIX,
        completion=completion,
        token_ids=(1, 2),
        logprobs=(-0.5, -0.5),
        label=label,  # type: ignore[arg-type]
        cwe="CWE-89" if label == "vulnerable" else None,
        first_flagged_line=line,
    )


def test_diff_proposes_each_hunk_start_snapped_to_a_token(sql_task: Task) -> None:
    (start, _end) = sql_task.changed_spans[0]
    raw = STRATEGIES["diff"].propose(sql_task, GOLDEN, StrategyContext())
    assert [p.offset for p in raw] == [start]
    score = _scored(GOLDEN)
    placed = propose_nodes(sql_task, GOLDEN, StrategyContext(golden_score=score), parse_strategies("diff"))
    assert len(placed) == 1
    node = placed[0]
    assert node.char_offset <= start
    assert node.char_offset in score.char_offsets
    assert node.token_offset is not None and score.char_offsets[node.token_offset] == node.char_offset
    # the branch prefix ends on a token boundary just before the changed '?'
    assert GOLDEN[node.char_offset : start + 1].strip() in {"?", "= ?"}


def test_diff_line_snapping_moves_to_the_line_start(sql_task: Task) -> None:
    placed = propose_nodes(sql_task, GOLDEN, StrategyContext(), parse_strategies("diff"), snap_line=True)
    line2 = GOLDEN.index("    cur.execute")
    assert [p.char_offset for p in placed] == [line2]


def test_diff_ignores_a_self_found_golden(sql_task: Task) -> None:
    assert STRATEGIES["diff"].propose(sql_task, "    pass\n", StrategyContext()) == []


def test_oracle_places_node_where_vulnerable_sample_leaves_golden(sql_task: Task) -> None:
    vulnerable = (
        GOLDEN.split("\n")[0] + "\n    cur.execute(\"SELECT * FROM users WHERE name = '%s'\" % name)\n"
    )
    flagged_line = PREFIX.count("\n") + 2
    secure = GOLDEN
    context = StrategyContext(
        root_branches=(_branch(vulnerable, "vulnerable", flagged_line), _branch(secure, "secure"))
    )
    proposals = STRATEGIES["oracle"].propose(sql_task, GOLDEN, context)
    divergence = GOLDEN.index("?")  # first char where the sample differs from the golden
    line_start = GOLDEN.index("    cur.execute")
    assert [p.offset for p in proposals] == [min(divergence, line_start)] == [line_start]
    # a sample that diverges *before* its flagged line is placed at the divergence
    early = "    c = db.cursor()\n    c.execute('x' % name)\n"
    context = StrategyContext(root_branches=(_branch(early, "vulnerable", flagged_line),))
    assert [p.offset for p in STRATEGIES["oracle"].propose(sql_task, GOLDEN, context)] == [5]


def test_oracle_skips_lines_in_the_task_prefix_and_non_vulnerable(sql_task: Task) -> None:
    context = StrategyContext(
        root_branches=(_branch("    pass\n", "vulnerable", 1), _branch("    pass\n", "unparseable", 4))
    )
    assert STRATEGIES["oracle"].propose(sql_task, GOLDEN, context) == []


def test_entropy_picks_top_positions_with_spacing(sql_task: Task) -> None:
    score = _scored(GOLDEN)
    n = len(score.char_offsets)
    entropies = [0.1] * n
    entropies[3], entropies[4], entropies[9] = 3.0, 2.9, 2.0
    score = _scored(GOLDEN, entropies)
    context = StrategyContext(golden_score=score, entropy_top_m=2, entropy_min_spacing=3)
    proposals = STRATEGIES["entropy"].propose(sql_task, GOLDEN, context)
    assert [p.offset for p in proposals] == [score.char_offsets[3], score.char_offsets[9]]
    assert STRATEGIES["entropy"].propose(sql_task, GOLDEN, StrategyContext()) == []


def test_top_spaced_is_deterministic_on_ties() -> None:
    assert top_spaced([1.0, 1.0, 1.0, 1.0], 2, 2) == [0, 2]
    assert top_spaced([0.0, 5.0, 4.0], 5, 1) == [0, 1, 2]


def test_annotated_matches_gpt4o_line_text(sql_task: Task) -> None:
    proposals = STRATEGIES["annotated"].propose(sql_task, GOLDEN, StrategyContext())
    assert [p.offset for p in proposals] == [GOLDEN.index("    cur.execute")]
    assert find_line(GOLDEN, "return   cur.fetchone()") == GOLDEN.index("    return")
    assert find_line(GOLDEN, "os.system(cmd)") is None


def test_llm_needs_an_endpoint_and_parses_answers(sql_task: Task) -> None:
    with pytest.raises(ValueError, match="llm-url"):
        STRATEGIES["llm"].propose(sql_task, GOLDEN, StrategyContext())
    answer = 'Sure:\n[{"line": "cur.execute(q)", "cwe": "CWE-89"}, "return x"]'
    assert parse_llm_nodes(answer) == [("cur.execute(q)", "CWE-89"), ("return x", None)]
    assert parse_llm_nodes("no list here") == []


def test_combined_strategies_merge_on_the_same_offset(sql_task: Task) -> None:
    merged = merge_proposals(
        [NodeProposal(7, "diff"), NodeProposal(9, "oracle"), NodeProposal(20, "entropy")],
        GOLDEN,
        boundaries=(0, 6, 15),
    )
    assert [(m.char_offset, m.strategy) for m in merged] == [(6, "diff+oracle"), (15, "entropy")]


def test_parse_strategies_rejects_unknown_names() -> None:
    assert [s.name for s in parse_strategies("diff, oracle,diff")] == ["diff", "oracle"]
    with pytest.raises(ValueError, match="unknown risk-node strategy 'magic'"):
        parse_strategies("diff,magic")


def test_oracle_aligns_lines_when_the_sample_differs_from_the_start(sql_task: Task) -> None:
    # written from scratch: differs at char 0 (comment) but shares the cursor line with the golden
    sample = "    # look the user up\n  cur = db.cursor()\n    cur.execute('... %s' % name)\n"
    flagged_line = PREFIX.count("\n") + 3
    context = StrategyContext(root_branches=(_branch(sample, "vulnerable", flagged_line),))
    (proposal,) = STRATEGIES["oracle"].propose(sql_task, GOLDEN, context)
    assert proposal.offset == GOLDEN.index("    cur.execute")  # after the last shared golden line
    assert "last shared line" in proposal.reason
    # a shared line *after* the flagged one does not count
    late = "    x = 1\n    cur.execute('%s' % name)\n    return cur.fetchone()\n"
    context = StrategyContext(root_branches=(_branch(late, "vulnerable", PREFIX.count("\n") + 2),))
    (proposal,) = STRATEGIES["oracle"].propose(sql_task, GOLDEN, context)
    assert proposal.offset == 4  # "    " shared, then 'x' vs 'c'


# Found in the 36-task run (docs/design.md, "A referee anchored on a name teaches a name"): a task
# with an empty prefix, a golden `def build_path(...)` and vulnerable root samples `def safe_concatenate(...)`.
PATH_GOLDEN = (
    "def build_path(root_dir, path):\n"
    "    absolute_path = Path(root_dir) / path\n"
    "    if \"..\" in absolute_path.parts:\n"
    "        raise ValueError(path)\n"
    "    return absolute_path\n"
)
PATH_SAMPLE = "def safe_concatenate(directory, relative):\n    return os.path.join(directory, relative)\n"


def _scratch_task(language: str = "py") -> Task:
    return Task(id="t284", language=language, cwe=("CWE-22",), instruction="safely join", prefix="")


def test_oracle_node_inside_a_signature_moves_to_the_body() -> None:
    sample = Branch(node_id="root", prefix="", completion=PATH_SAMPLE, token_ids=(1,), logprobs=(-0.5,),
                    label="vulnerable", cwe="CWE-22", first_flagged_line=2)
    context = StrategyContext(root_branches=(sample,))
    (proposal,) = STRATEGIES["oracle"].propose(_scratch_task(), PATH_GOLDEN, context)
    # "def " is shared; the name differs at char 4: the node goes to the first body line (char 32)
    assert len("def build_path(root_dir, path):\n") == 32
    assert proposal.offset == 32 and PATH_GOLDEN[32:].startswith("    absolute_path")
    assert "moved to the body at golden char 32" in proposal.reason
    # the option off keeps the old placement, right after "def "
    context.signature_to_body = False
    (proposal,) = STRATEGIES["oracle"].propose(_scratch_task(), PATH_GOLDEN, context)
    assert proposal.offset == 4


def test_signature_detection_by_language() -> None:
    from treeplay.tree.strategies import body_start_if_in_signature as body

    decorated = "@app.route('/x')\ndef view(name):\n    return name\n"
    assert body(decorated, 3, "py") == len("@app.route('/x')\ndef view(name):\n")  # in the decorator
    multi = "def f(a,\n      b):  # two lines\n    return a\n"
    assert body(multi, 10, "py") == len("def f(a,\n      b):  # two lines\n")
    assert body(PATH_GOLDEN, 40, "py") is None  # already in the body
    assert body("def f(x):", 4, "py") is None  # no body line after the header
    assert body("function f(a) {\n  return a;\n}\n", 9, "js") == len("function f(a) {\n")
    assert body("func F(a int) int {\n\treturn a\n}\n", 5, "go") == len("func F(a int) int {\n")
    assert body("int f(int a) {\n  return a;\n}\n", 4, "c") is None  # C signatures are left alone
    assert body("x = 1\ndef f():\n    pass\n", 2, "py") is None  # a statement before the def
