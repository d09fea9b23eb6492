"""Analyzer plugins, one registry (`registry.py`). Each plugin is imported only when first used.

The package's public face: the records and interface of `base.py`, the registry's `ANALYZERS` and
`create_analyzer`.
"""

from __future__ import annotations

from treeplay.oracle.analyzers.base import AnalysisResult, Analyzer, RawFinding, Target, ToolError
from treeplay.oracle.analyzers.registry import ANALYZERS, create_analyzer

__all__ = ["ANALYZERS", "AnalysisResult", "Analyzer", "RawFinding", "Target", "ToolError", "create_analyzer"]
