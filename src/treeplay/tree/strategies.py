"""Risk-node strategies: where on the golden path can a vulnerability first enter?

Each strategy is a small plugin with one method, `propose(task, golden, context)`, returning
`NodeProposal`s: raw character offsets into the golden completion (the text after
`task.prefix`). `propose_nodes` runs a comma-separated combination (`"diff,oracle"`), places every
proposal on a token boundary (optionally a line start) and merges proposals that land on the
same offset (their strategy names are joined with `+`).

Strategies:
- `diff`      start of each hunk of `task.changed_spans` (secure vs vulnerable reference).
- `oracle`    for each root sample the oracle judged vulnerable: where it first diverges from
              the golden path, at or before its first flagged line.
- `entropy`   the top-m positions of the policy's next-token entropy along the golden path,
              at least `entropy_min_spacing` tokens apart.
- `annotated` the reference implementation's GPT-4o "CWE Risk Nodes" (`task.annotated_nodes`),
              matched to golden lines by text.
- `llm`       an optional annotator over any OpenAI-compatible chat endpoint (off by default).
"""

from __future__ import annotations

import difflib
import json
import os
import re
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from treeplay.policy.records import Scored
from treeplay.tasks.records import Task
from treeplay.tree.offsets import common_prefix_length, line_number_start, place_offset
from treeplay.tree.records import Branch


@dataclass(frozen=True)
class NodeProposal:
    offset: int  # raw character offset into the golden completion
    strategy: str
    reason: str = ""
    cwe: str | None = None


@dataclass(frozen=True)
class PlacedNode:
    """A proposal after snapping; several proposals may merge into one placed node."""

    char_offset: int
    token_offset: int | None
    strategies: tuple[str, ...]
    reasons: tuple[str, ...] = ()

    @property
    def strategy(self) -> str:
        return "+".join(self.strategies)


@dataclass
class StrategyContext:
    """What strategies may look at besides the task and the golden completion."""

    golden_score: Scored | None = None  # policy scoring of the golden completion from task.prefix
    root_branches: Sequence[Branch] = ()  # labelled samples from the root (for `oracle`)
    entropy_top_m: int = 3
    entropy_min_spacing: int = 8  # tokens
    llm_url: str | None = None  # OpenAI-compatible base URL, e.g. http://localhost:8000/v1
    llm_model: str = "gpt-4o"
    llm_api_key_env: str = "OPENAI_API_KEY"
    llm_timeout_s: float = 60.0
    signature_to_body: bool = True  # `oracle`: a node inside a def/class signature moves into the body
    notes: list[str] = field(default_factory=list)


class Strategy(Protocol):
    name: str

    def propose(self, task: Task, golden: str, context: StrategyContext) -> list[NodeProposal]: ...


class DiffStrategy:
    """Start of each changed hunk between the secure and vulnerable references."""

    name = "diff"

    def propose(self, task: Task, golden: str, context: StrategyContext) -> list[NodeProposal]:
        if task.golden is None or golden != task.golden:
            return []  # the spans index the task's golden; a self-found path has none
        return [
            NodeProposal(start, self.name, f"hunk {start}:{end}", task.primary_cwe)
            for start, end in sorted(task.changed_spans)
        ]


class OracleStrategy:
    """Where each vulnerable root sample left the golden path, at or before its first flagged line.

    Two readings of "left the golden path", the later one wins:
    - characters: the sample's first character that differs from the golden completion;
    - lines: samples written from scratch differ from the golden within a few characters, yet
      often share whole lines with it. The sample's lines are aligned to the golden's
      (`difflib`, whitespace-normalised); the node is the start of the golden line after the
      last golden line the sample matched *before* its flagged line.
    Both are capped at the flagged line's start in the sample where they index the same text.
    """

    name = "oracle"

    def propose(self, task: Task, golden: str, context: StrategyContext) -> list[NodeProposal]:
        proposals = []
        for branch in context.root_branches:
            if branch.label != "vulnerable" or branch.first_flagged_line is None:
                continue
            flagged_start = line_number_start(branch.text, branch.first_flagged_line)
            if flagged_start is None:
                continue
            flagged_in_path = flagged_start - len(task.prefix)
            if flagged_in_path < 0:
                continue  # flagged inside the task's own prefix: no decision of the model
            path = branch.text[len(task.prefix) :]
            divergence = common_prefix_length(path, golden)
            offset = min(divergence, flagged_in_path, len(golden))
            aligned = aligned_divergence(path, golden, flagged_in_path)
            reason = f"sample diverges at char {divergence}, flagged line {branch.first_flagged_line}"
            if aligned is not None and aligned > offset:
                offset = aligned
                reason += f", last shared line before it ends at golden char {aligned}"
            body = body_start_if_in_signature(golden, offset, task.language) if context.signature_to_body else None
            if body is not None:
                offset = body
                reason += f", inside the signature: moved to the body at golden char {body}"
            proposals.append(NodeProposal(offset, self.name, reason, branch.cwe))
        return proposals


# A line that opens a function or class (decorators included), per language; the header ends at the
# first line ending in ':' (Python) or holding '{' (JS, Go), or at its own line (Ruby).
_HEADER_START = {
    "py": re.compile(r"\s*(@|(async\s+)?def\b|class\b)"),
    "rb": re.compile(r"\s*(def|class|module)\b"),
    "js": re.compile(r"\s*(export\s+)?(default\s+)?(async\s+)?(function\b|class\b)"),
    "go": re.compile(r"\s*func\b"),
}


_HEADER_LINES = 8  # a signature (decorators included) longer than this is not looked for


def body_start_if_in_signature(golden: str, offset: int, language: str) -> int | None:
    """The start of the body's first line when `offset` falls in a function/class header of the
    golden completion (the name, the parameters, a decorator): a sample that leaves the golden path
    there differs first in what it is called, and a preference taken at that point would teach a
    name. None when `offset` is not in a header, or the header has no body line after it."""
    pattern = _HEADER_START.get(language)
    if pattern is None:
        return None
    line_start = golden.rfind("\n", 0, offset) + 1
    for _ in range(_HEADER_LINES):  # the header may span lines: look back for where it starts
        if pattern.match(golden, line_start):
            end = _header_end(golden, line_start, language)
            return end if end is not None and offset < end < len(golden) else None
        if line_start == 0:
            return None
        line_start = golden.rfind("\n", 0, line_start - 1) + 1
    return None


def _header_end(golden: str, start: int, language: str) -> int | None:
    """Offset just past the newline of the header's last line (None: the header never ends)."""
    position = start
    while position < len(golden):
        newline = golden.find("\n", position)
        line = golden[position:] if newline < 0 else golden[position:newline]
        code = line.split("#", 1)[0].rstrip() if language in ("py", "rb") else line.rstrip()
        if language == "rb" or (language == "py" and code.endswith(":")) or (language in ("js", "go") and "{" in code):
            return len(golden) if newline < 0 else newline + 1
        if newline < 0:
            return None
        position = newline + 1
    return None


def aligned_divergence(path: str, golden: str, flagged_in_path: int) -> int | None:
    """Golden offset after the last golden line a sample line before `flagged_in_path` matches.

    None when no sample line before the flagged one matches a (non-blank) golden line.
    """
    sample_lines = path.splitlines(keepends=True)
    golden_lines = golden.splitlines(keepends=True)
    flagged_index = path.count("\n", 0, flagged_in_path)
    matcher = difflib.SequenceMatcher(
        a=[_normalise_line(x) for x in sample_lines],
        b=[_normalise_line(x) for x in golden_lines],
        autojunk=False,
    )
    last_golden: int | None = None
    for a_start, b_start, size in matcher.get_matching_blocks():
        for step in range(size):
            if a_start + step < flagged_index and _normalise_line(golden_lines[b_start + step]):
                last_golden = b_start + step
    if last_golden is None:
        return None
    return sum(len(line) for line in golden_lines[: last_golden + 1])


class EntropyStrategy:
    """Highest next-token entropy positions along the golden path (no labels needed)."""

    name = "entropy"

    def propose(self, task: Task, golden: str, context: StrategyContext) -> list[NodeProposal]:
        score = context.golden_score
        if score is None or not score.entropies or not score.char_offsets:
            return []
        picked = top_spaced(score.entropies, context.entropy_top_m, context.entropy_min_spacing)
        return [
            NodeProposal(score.char_offsets[i], self.name, f"entropy {score.entropies[i]:.3f} at token {i}")
            for i in picked
        ]


def top_spaced(values: Sequence[float], top_m: int, min_spacing: int) -> list[int]:
    """Indices of the `top_m` largest values, pairwise at least `min_spacing` apart, ascending.

    Ties break toward the earlier index, so the result is deterministic.
    """
    chosen: list[int] = []
    for index in sorted(range(len(values)), key=lambda i: (-values[i], i)):
        if len(chosen) >= top_m:
            break
        if all(abs(index - other) >= min_spacing for other in chosen):
            chosen.append(index)
    return sorted(chosen)


def _normalise_line(line: str) -> str:
    return re.sub(r"\s+", " ", line).strip()


def find_line(golden: str, wanted: str) -> int | None:
    """Start offset in `golden` of the line best matching `wanted` (annotator line text).

    Exact (whitespace-normalised) equality first, then the first golden line containing the
    wanted text, then the first golden line contained in it (lines of 8+ characters only).
    """
    target = _normalise_line(wanted)
    if not target:
        return None
    starts = []
    position = 0
    for line in golden.splitlines(keepends=True):
        starts.append((position, _normalise_line(line)))
        position += len(line)
    for start, text in starts:
        if text == target:
            return start
    for start, text in starts:
        if text and target in text:
            return start
    for start, text in starts:
        if len(text) >= 8 and text in target:
            return start
    return None


class AnnotatedStrategy:
    """The reference implementation's GPT-4o risk nodes, located by line text."""

    name = "annotated"

    def propose(self, task: Task, golden: str, context: StrategyContext) -> list[NodeProposal]:
        proposals = []
        for node in task.annotated_nodes:
            start = find_line(golden, node.line)
            if start is not None:
                proposals.append(NodeProposal(start, self.name, node.description[:200], node.cwe))
        return proposals


LLM_PROMPT = (
    "You are a security auditor. Below is a {language} solution to the task: {instruction}\n"
    "List the code lines where a vulnerability ({cwe}) could first be introduced if a developer "
    "wrote this code carelessly (CWE risk nodes). Answer with a JSON list of objects "
    '{{"line": <exact code line>, "cwe": <CWE id>}} and nothing else.\n\n```\n{code}\n```'
)


def parse_llm_nodes(answer: str) -> list[tuple[str, str | None]]:
    """(line, cwe) pairs from an annotator answer: the first JSON list in the text."""
    match = re.search(r"\[.*\]", answer, flags=re.DOTALL)
    if not match:
        return []
    try:
        items = json.loads(match.group(0))
    except json.JSONDecodeError:
        return []
    result = []
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and isinstance(item.get("line"), str):
            cwe = item.get("cwe")
            result.append((item["line"], str(cwe) if cwe else None))
        elif isinstance(item, str):
            result.append((item, None))
    return result


class LlmStrategy:
    """Ask an OpenAI-compatible chat endpoint for risk lines (off unless `llm_url` is set)."""

    name = "llm"

    def propose(self, task: Task, golden: str, context: StrategyContext) -> list[NodeProposal]:
        if not context.llm_url:
            raise ValueError(
                "strategy 'llm' needs an endpoint: pass --llm-url (OpenAI-compatible /v1 base URL)"
            )
        prompt = LLM_PROMPT.format(
            language=task.language,
            instruction=task.instruction,
            cwe=", ".join(task.cwe) or "any CWE",
            code=task.prefix + golden,
        )
        body = json.dumps(
            {"model": context.llm_model, "messages": [{"role": "user", "content": prompt}], "temperature": 0}
        ).encode()
        request = urllib.request.Request(
            context.llm_url.rstrip("/") + "/chat/completions",
            data=body,
            headers={
                "Content-Type": "application/json",
                "Authorization": f"Bearer {os.environ.get(context.llm_api_key_env, '')}",
            },
        )
        with urllib.request.urlopen(request, timeout=context.llm_timeout_s) as response:
            payload = json.loads(response.read().decode())
        answer = payload["choices"][0]["message"]["content"]
        proposals = []
        for line, cwe in parse_llm_nodes(answer):
            start = find_line(golden, line)
            if start is not None:
                proposals.append(NodeProposal(start, self.name, line[:200], cwe))
        return proposals


STRATEGIES: dict[str, Strategy] = {
    s.name: s
    for s in (DiffStrategy(), OracleStrategy(), EntropyStrategy(), AnnotatedStrategy(), LlmStrategy())
}


def parse_strategies(spec: str | Sequence[str]) -> list[Strategy]:
    """'diff,oracle' -> strategy plugins; a clear error names an unknown one."""
    names = [n.strip() for n in (spec.split(",") if isinstance(spec, str) else spec) if n.strip()]
    if not names:
        raise ValueError("no risk-node strategy given")
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown:
        raise ValueError(f"unknown risk-node strategy {unknown[0]!r}; choose from {', '.join(STRATEGIES)}")
    return [STRATEGIES[n] for n in dict.fromkeys(names)]


def merge_proposals(
    proposals: Sequence[NodeProposal],
    golden: str,
    boundaries: Sequence[int] = (),
    *,
    snap_line: bool = False,
) -> list[PlacedNode]:
    """Place proposals on token boundaries and merge those that land on the same offset."""
    merged: dict[int, PlacedNode] = {}
    for proposal in proposals:
        char_offset, token_offset = place_offset(golden, proposal.offset, boundaries, snap_line=snap_line)
        existing = merged.get(char_offset)
        if existing is None:
            merged[char_offset] = PlacedNode(
                char_offset, token_offset, (proposal.strategy,), (proposal.reason,)
            )
        else:
            strategies = existing.strategies
            if proposal.strategy not in strategies:
                strategies = (*strategies, proposal.strategy)
            merged[char_offset] = PlacedNode(
                char_offset, existing.token_offset, strategies, (*existing.reasons, proposal.reason)
            )
    return [merged[o] for o in sorted(merged)]


def propose_nodes(
    task: Task,
    golden: str,
    context: StrategyContext,
    strategies: Sequence[Strategy],
    *,
    snap_line: bool = False,
) -> list[PlacedNode]:
    """Run every strategy and return merged, token-snapped trunk nodes in path order."""
    proposals: list[NodeProposal] = []
    for strategy in strategies:
        proposals.extend(strategy.propose(task, golden, context))
    boundaries = context.golden_score.char_offsets if context.golden_score is not None else ()
    return merge_proposals(proposals, golden, boundaries, snap_line=snap_line)
