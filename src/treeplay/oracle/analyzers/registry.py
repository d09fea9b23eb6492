"""The analyzer registry: name -> plugin class, each plugin module imported only when first used."""

from __future__ import annotations

import importlib

from treeplay.oracle.analyzers.base import Analyzer

# registry name -> "module:ClassName"
ANALYZERS: dict[str, str] = {
    "bandit": "treeplay.oracle.analyzers.bandit_py:BanditAnalyzer",
    "semgrep": "treeplay.oracle.analyzers.semgrep:SemgrepAnalyzer",
    "cppcheck": "treeplay.oracle.analyzers.cppcheck:CppcheckAnalyzer",
    "flawfinder": "treeplay.oracle.analyzers.flawfinder:FlawfinderAnalyzer",
    "clang-tidy": "treeplay.oracle.analyzers.clang_tidy:ClangTidyAnalyzer",
    "eslint": "treeplay.oracle.analyzers.eslint:EslintAnalyzer",
    "gofmt": "treeplay.oracle.analyzers.golang:GofmtAnalyzer",
    "go-vet": "treeplay.oracle.analyzers.golang:GoVetAnalyzer",
    "codeql": "treeplay.oracle.analyzers.codeql:CodeQLAnalyzer",
    "javac-parse": "treeplay.oracle.analyzers.java:JavacParseAnalyzer",
}


def create_analyzer(name: str, *, timeout_s: float = 300.0) -> Analyzer:
    """Instantiate a registered analyzer; KeyError naming the known ones for an unknown name."""
    if name not in ANALYZERS:
        raise KeyError(f"unknown analyzer {name!r} (known: {', '.join(ANALYZERS)})")
    module_name, class_name = ANALYZERS[name].split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    try:
        return cls(timeout_s=timeout_s)  # type: ignore[no-any-return]
    except TypeError:
        return cls()  # type: ignore[no-any-return]
