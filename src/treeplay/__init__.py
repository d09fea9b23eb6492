"""treeplay: Tree-like Self-Play (TSP) for secure code generation.

Pipeline stages, each a sub-package exchanging plain typed records (JSONL on disk):
tasks -> policy -> oracle -> tree -> train -> eval.
"""

__version__ = "0.1.0"
