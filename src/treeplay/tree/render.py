"""Show a tree: a rich terminal tree, a self-contained HTML page, or a tree record in a report.

The HTML page has the golden path with every trunk node marked where it sits, then one section
per node with its branches rendered as line diffs against what the parent path does from there
(golden suffix, or the rest of the parent branch for deeper nodes), with oracle findings inline.
The run report (`treeplay.eval.report`) shows the trees it read from `trees.jsonl` (`Tree` records)
with `record_markdown` and `record_block_html` (the HTML page in an iframe when the tree carries its
task, a short view otherwise). This is the only tree renderer.
"""

from __future__ import annotations

import difflib
import html
import re
from collections.abc import Sequence
from typing import Any

from rich.markup import escape
from rich.tree import Tree as RichTree

from treeplay.tasks.records import Task
from treeplay.tree.placement import node_prefix
from treeplay.tree.records import Branch, Node, Tree

LABEL_COLOURS = {"secure": "green", "vulnerable": "red", "unparseable": "yellow", "nonfunctional": "magenta"}
HTML_COLOURS = {
    "secure": "#1a7f37",
    "vulnerable": "#cf222e",
    "unparseable": "#9a6700",
    "nonfunctional": "#8250df",
}


def _first_lines(text: str, count: int = 2, width: int = 100) -> str:
    lines = [line[:width] for line in text.strip("\n").splitlines()[:count]]
    more = " …" if len(text.strip("\n").splitlines()) > count else ""
    return " ⏎ ".join(lines) + more


def _code_around(path: str, offset: int, width: int = 60) -> str:
    """The code just before and after a node, with ‸ marking the node."""
    before = path[max(0, offset - width) : offset].split("\n")[-1]
    after = path[offset : offset + width].split("\n")[0]
    return f"{before}‸{after}"


def _parent_path(task: Task, tree: Tree, node: Node) -> str:
    if node.branch_of_parent is None:
        return tree.golden or ""
    return tree.branches[node.branch_of_parent].text[len(task.prefix) :]


def _children(tree: Tree, branch_index: int) -> list[Node]:
    return [n for n in tree.nodes if n.branch_of_parent == branch_index]


def _finding_text(finding: dict[str, Any]) -> str:
    cwe = finding.get("cwe") or "no CWE"
    return f"L{finding.get('line')} {cwe} {finding.get('analyzer', '')}:{finding.get('rule', '')} {finding.get('message', '')}"


def rich_tree(tree: Tree, task: Task) -> RichTree:
    """A terminal view: nodes with the code around them, branches with coloured labels."""
    header = (
        f"[bold]{escape(tree.task_id)}[/] {escape(task.language)} {escape(','.join(task.cwe))} "
        f"golden: {tree.golden_source}, {len(tree.nodes)} nodes, {len(tree.branches)} branches, "
        f"round {tree.round}, model {escape(tree.model_id)}"
    )
    root = RichTree(header)
    for node in tree.nodes:
        if node.parent is None:
            _add_node(root, tree, task, node)
    return root


def _add_node(parent: RichTree, tree: Tree, task: Task, node: Node) -> None:
    path = _parent_path(task, tree, node)
    label = (
        f"[bold cyan]{node.id}[/] [dim]{escape(node.strategy)} @char {node.char_offset}"
        f" tok {node.token_offset} depth {node.depth}[/]  [white]{escape(_code_around(path, node.char_offset))}[/]"
    )
    branch_tree = parent.add(label)
    for index, branch in enumerate(tree.branches):
        if branch.node_id != node.id:
            continue
        colour = LABEL_COLOURS.get(branch.label, "white")
        extra = f" {branch.cwe} L{branch.first_flagged_line}" if branch.label == "vulnerable" else ""
        cut = " [dim](cut at max tokens)[/]" if branch.finish_reason == "length" else ""
        sub = branch_tree.add(
            f"[{colour}]{branch.label}{escape(extra)}[/]{cut}  {escape(_first_lines(branch.completion))}"
        )
        for finding in branch.findings[:3]:
            sub.add(f"[dim]{escape(_finding_text(finding))}[/]")
        for child in _children(tree, index):
            _add_node(sub, tree, task, child)


# ---- HTML ---------------------------------------------------------------------------------------

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1100px;color:#1f2328}
pre{background:#f6f8fa;padding:.6em;overflow-x:auto;font-size:13px;line-height:1.35}
.node{background:#0969da;color:#fff;border-radius:3px;padding:0 3px;font-size:11px;font-weight:bold}
.prefix{color:#6e7781}
.label{color:#fff;border-radius:3px;padding:1px 6px;font-size:12px}
.add{background:#dafbe1}.del{background:#ffebe9;color:#82071e}.ctx{color:#57606a}
.flag{background:#ffd8b5}.finding{color:#cf222e;font-size:12px;margin-left:1em}
.branch{border-left:3px solid #d0d7de;margin:.6em 0 .6em .4em;padding-left:.8em}
.deep{margin-left:2em}
h2{font-size:1.15em;border-bottom:1px solid #d0d7de}
"""


def _golden_with_markers(task: Task, tree: Tree) -> str:
    golden = tree.golden or ""
    trunk = sorted((n for n in tree.nodes if n.parent is None), key=lambda n: (n.char_offset, n.id))
    parts = [f'<span class="prefix">{html.escape(task.prefix)}</span>']
    position = 0
    for node in trunk:
        parts.append(html.escape(golden[position : node.char_offset]))
        parts.append(f'<a href="#{node.id}" class="node" title="{html.escape(node.strategy)}">▼{node.id}</a>')
        position = node.char_offset
    parts.append(html.escape(golden[position:]))
    return "".join(parts)


def branch_diff_html(reference: str, branch: Branch, task_prefix_lines: int) -> str:
    """Line diff of the branch completion against `reference` with findings inline.

    `task_prefix_lines` is the number of lines the judged program has before the completion
    starts, so a finding's program line maps onto the completion line.
    """
    findings_by_line: dict[int, list[dict[str, Any]]] = {}
    for finding in branch.findings:
        findings_by_line.setdefault(int(finding.get("line", 0)), []).append(finding)
    ref_lines = reference.splitlines()
    new_lines = branch.completion.splitlines()
    hidden = 0
    if branch.finish_reason == "length" and len(ref_lines) > len(new_lines) + 2:
        # the branch was cut by the token budget: compare with as much of the reference only
        hidden = len(ref_lines) - (len(new_lines) + 2)
        ref_lines = ref_lines[: len(new_lines) + 2]
    out: list[str] = []
    matcher = difflib.SequenceMatcher(a=ref_lines, b=new_lines, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag in ("replace", "delete"):
            out.extend(f'<span class="del">- {html.escape(line)}</span>' for line in ref_lines[i1:i2])
        if tag in ("replace", "insert", "equal"):
            for j in range(j1, j2):
                program_line = task_prefix_lines + j
                css = "ctx" if tag == "equal" else "add"
                marker = "  " if tag == "equal" else "+ "
                flagged = program_line in findings_by_line
                if flagged:
                    css += " flag"
                out.append(f'<span class="{css}">{marker}{html.escape(new_lines[j])}</span>')
                for finding in findings_by_line.get(program_line, []):
                    out.append(f'<span class="finding">⚠ {html.escape(_finding_text(finding))}</span>')
    if hidden:
        out.append(f'<span class="ctx">… {hidden} more reference lines (branch cut at max tokens)</span>')
    shown = {task_prefix_lines + j for j in range(len(new_lines))}
    for line, items in sorted(findings_by_line.items()):
        if line not in shown:
            out.extend(
                f'<span class="finding">⚠ (outside the completion) {html.escape(_finding_text(f))}</span>'
                for f in items
            )
    return "\n".join(out)


def _node_html(task: Task, tree: Tree, node: Node, depth_class: str = "") -> str:
    path = _parent_path(task, tree, node)
    reference = path[node.char_offset :]
    prefix = node_prefix(task, tree, node)
    prefix_lines = prefix.count("\n") + 1  # completion line j is program line prefix_lines + j
    where = "golden path" if node.parent is None else f"branch {node.branch_of_parent} of {node.parent}"
    parts = [
        f'<section id="{node.id}" class="{depth_class}"><h2>{node.id} · {html.escape(node.strategy)} · '
        f"depth {node.depth} · char {node.char_offset} (token {node.token_offset}) in {where}</h2>",
        f"<pre>{html.escape(_code_around(path, node.char_offset, 120))}</pre>",
    ]
    for index, branch in enumerate(tree.branches):
        if branch.node_id != node.id:
            continue
        colour = HTML_COLOURS.get(branch.label, "#57606a")
        detail = f" {branch.cwe} line {branch.first_flagged_line}" if branch.label == "vulnerable" else ""
        cut = " · cut at max tokens" if branch.finish_reason == "length" else ""
        lp = sum(branch.logprobs)
        parts.append(
            f'<div class="branch"><span class="label" style="background:{colour}">{branch.label}</span>'
            f"{html.escape(detail)} <small>branch {index} · {len(branch.token_ids)} tokens · "
            f"log-prob {lp:.1f}{cut}</small>"
            f"<pre>{branch_diff_html(reference, branch, prefix_lines)}</pre>"
        )
        for child in _children(tree, index):
            parts.append(_node_html(task, tree, child, "deep"))
        parts.append("</div>")
    parts.append("</section>")
    return "\n".join(parts)


def tree_html(tree: Tree, task: Task) -> str:
    """A self-contained HTML page (inline CSS, no scripts, no external resources)."""
    labels: dict[str, int] = {}
    for branch in tree.branches:
        labels[branch.label] = labels.get(branch.label, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(labels.items()))
    body = [
        f"<h1>{html.escape(tree.task_id)}</h1>",
        f"<p><b>{html.escape(task.language)}</b> · {html.escape(', '.join(task.cwe))} · "
        f"golden: {tree.golden_source} · {len(tree.nodes)} nodes · {len(tree.branches)} branches ({summary}) · "
        f"round {tree.round} · model {html.escape(tree.model_id)} · config {html.escape(tree.config_hash)}</p>",
        f"<p><i>{html.escape(task.instruction)}</i></p>",
        "<h2>Golden path</h2>",
        f"<pre>{_golden_with_markers(task, tree)}</pre>"
        if tree.golden is not None
        else "<p>no golden path</p>",
    ]
    for node in tree.nodes:
        if node.parent is None:
            body.append(_node_html(task, tree, node))
    return (
        '<!DOCTYPE html><html><head><meta charset="utf-8">'
        f"<title>treeplay tree {html.escape(tree.task_id)}</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def find_tree(trees: Sequence[Tree], task_id: str | None) -> Tree:
    if not trees:
        raise ValueError("the trees file holds no trees")
    if task_id is None:
        return trees[0]
    for tree in trees:
        if tree.task_id == task_id:
            return tree
    raise ValueError(f"no tree for task {task_id!r} (have e.g. {', '.join(t.task_id for t in trees[:5])})")


# ---- trees in the run report ------------------------------------------------------------------


def golden_with_markers(tree: Tree) -> str:
    """The golden path of a tree with «node-id» markers at the trunk nodes' character offsets."""
    golden = tree.golden or ""
    trunk = sorted((n for n in tree.nodes if n.parent is None), key=lambda n: n.char_offset)
    out, last = [], 0
    for node in trunk:
        offset = max(last, min(len(golden), node.char_offset))
        out.append(golden[last:offset])
        out.append(f"«{node.id}»")
        last = offset
    out.append(golden[last:])
    return "".join(out)


def _clip(text: str, lines: int = 10) -> str:
    parts = text.splitlines()
    return "\n".join(parts[:lines]) + (f"\n… ({len(parts) - lines} more lines)" if len(parts) > lines else "")


def record_markdown(tree: Tree) -> str:
    """A tree in Markdown: golden path with node markers, branches by node."""
    lines = [f"**{tree.task_id}** — golden path ({tree.golden_source}), "
             f"{len(tree.nodes)} nodes, {len(tree.branches)} branches", "",
             "```", golden_with_markers(tree) or "(no golden path)", "```", ""]  # fmt: skip
    for node in tree.nodes:
        branches = [b for b in tree.branches if b.node_id == node.id]
        lines.append(f"- node `{node.id}` ({node.strategy}, offset {node.char_offset}, "
                     f"depth {node.depth}): {len(branches)} branches")  # fmt: skip
        for b in branches:
            where = f", first flagged line {b.first_flagged_line}" if b.first_flagged_line else ""
            lines.append(f"  - **{b.label}** {b.cwe or ''}{where}")
            lines.append("    ```")
            lines.extend("    " + line for line in _clip(b.completion, 6).splitlines())
            lines.append("    ```")
    return "\n".join(lines)


def record_html(tree: Tree) -> str:
    """A short HTML view of a tree: golden path with node markers, branches by node."""
    marked = html.escape(golden_with_markers(tree) or "(no golden path)")
    marked = re.sub(r"«([\w.-]+)»", r'<span class="node">\1</span>', marked)
    parts = [
        f"<p><b>{html.escape(tree.task_id)}</b> — golden path ({html.escape(tree.golden_source)}), "
        f"{len(tree.nodes)} nodes, {len(tree.branches)} branches</p>",
        f"<pre class='golden'>{marked}</pre>",
    ]
    for node in tree.nodes:
        branches = [b for b in tree.branches if b.node_id == node.id]
        items = []
        for b in branches:
            color = HTML_COLOURS.get(b.label, "#57606a")
            where = f", first flagged line {b.first_flagged_line}" if b.first_flagged_line else ""
            items.append(
                f"<li><span class='label' style='background:{color}'>{html.escape(b.label)}</span> "
                f"{html.escape(b.cwe or '')}{where}"
                f"<pre>{html.escape(_clip(b.completion, 8))}</pre></li>"
            )
        parts.append(
            f"<details open><summary>node <span class='node'>{html.escape(node.id)}</span> "
            f"({html.escape(node.strategy)}, offset {node.char_offset}, "
            f"depth {node.depth}) — {len(branches)} branches</summary><ul>{''.join(items)}</ul></details>"
        )
    return "\n".join(parts)


def record_block_html(tree: Tree) -> str:
    """The tree page (`tree_html`: diffs, findings) in an inline iframe when the tree carries its
    task snapshot; otherwise `record_html`. Both stay self-contained (no external resource)."""
    if tree.task:
        try:
            page = tree_html(tree, Task.from_dict(tree.task))
        except (KeyError, TypeError, ValueError):
            return record_html(tree)
        return f"<iframe class='tree' srcdoc=\"{html.escape(page, quote=True)}\"></iframe>"
    return record_html(tree)
