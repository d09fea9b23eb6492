"""`TreeConfig`: everything that shapes a tree (its hash is recorded in every tree).

The `tree:` section of a run config, the options of `treeplay tree build`, and the data-stage digest
(`dataclasses.asdict`) all come from these fields. Branch sampling runs at T = 1.0 (the paper's
exploration setting); the sampling fields take their help texts from `SamplingParams`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from treeplay.config_fields import inherit
from treeplay.policy.records import SamplingParams
from treeplay.tree.strategies import STRATEGIES, parse_strategies


@dataclass(frozen=True)
class TreeConfig:
    """Everything that shapes a tree (its hash is recorded in every tree)."""

    strategies: str = field(default="diff,oracle", metadata={
        "help": f"Risk-node strategies, comma-separated: {', '.join(STRATEGIES)}.", "aliases": ("--strategy",)})
    k: int = field(default=4, metadata={"help": "Branches sampled at each node.", "ge": 1})
    depth: int = field(default=2, metadata={
        "help": "Tree depth (2 = re-branch inside the vulnerable branches of depth 1).", "ge": 1})
    root_samples: int = field(default=4, metadata={
        "help": "Samples from the root (they feed the oracle strategy and the golden search).", "ge": 0})
    temperature: float = inherit(SamplingParams, "temperature")
    top_p: float = inherit(SamplingParams, "top_p")
    max_new_tokens: int = inherit(SamplingParams, "max_new_tokens")
    snap_line: bool = field(default=False, metadata={"help": "Move trunk nodes to the start of their line."})
    signature_to_body: bool = field(default=True, metadata={
        "help": "Strategy oracle: a node inside a function/class signature (Python, Ruby, JS, Go) moves to the "
                "first line of the body: a preference taken at the name teaches naming (docs/design.md).",
        "flag_off": "--keep-signature-nodes"})
    max_nodes: int = field(default=8, metadata={"help": "Nodes per task, root and deeper nodes included.", "ge": 1})
    max_branches: int = field(default=64, metadata={"help": "Branches per task, root samples included.", "ge": 1})
    entropy_top_m: int = field(default=3, metadata={"help": "Strategy entropy: nodes at the top-m entropy tokens."})
    entropy_min_spacing: int = field(default=8, metadata={
        "help": "Strategy entropy: tokens at least this far apart."})
    run_tests: bool = field(default=True, metadata={
        "help": "Run the task's tests in the sandbox when it has them.", "flag_off": "--no-tests"})
    trim_truncated: bool = field(default=True, metadata={
        "help": "Cut a completion stopped by max_new_tokens back to its last full line."})
    test_timeout_s: float = field(default=30.0, metadata={"help": "Wall-clock limit of one test run (seconds)."})
    llm_url: str | None = field(default=None, metadata={
        "help": "Strategy llm: OpenAI-compatible /v1 base URL, e.g. http://localhost:8000/v1."})
    llm_model: str = field(default="gpt-4o", metadata={"help": "Strategy llm: the model name sent to --llm-url."})

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.depth < 1:
            raise ValueError(f"depth must be >= 1, got {self.depth}")
        if self.root_samples < 0 or self.max_nodes < 1 or self.max_branches < 1 or self.max_new_tokens < 1:
            raise ValueError("root_samples must be >= 0; max_nodes, max_branches, max_new_tokens >= 1")
        parse_strategies(self.strategies)  # fail early on an unknown name

    def params(self, seed: int) -> SamplingParams:
        return SamplingParams(
            temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens, seed=seed
        )

    def hash(self) -> str:
        payload = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]
