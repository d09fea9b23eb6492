"""Write the import names of the most-downloaded PyPI distributions for the oracle's functional check.

    python scripts/pypi_top_modules.py /usr/share/package-lists/pypi.tsv > src/treeplay/oracle/data/pypi_top.txt

Input: a PyPI index listing as a TSV with a header row and the columns `name`, `version`, `month`,
`rank_among_15000_most_downloaded`, `summary` (the machine's package list, docs/oracle.md). Only
ranked rows are kept: an import of a module among the 15,000 most-downloaded distributions is the
task's environment (`import boto3` for an S3 task), not a hallucination, even when the sandbox does
not have it installed. Each distribution gives its normalised name and, where the usual packaging
affixes hide the import name, that name too (`python-dateutil` -> `dateutil`, `psycopg2-binary` ->
`psycopg2`). Import names that differ more (`PyYAML` -> `yaml`) are in
`treeplay.oracle.functional.IMPORT_ALIASES`. Generic names (`utils`, `config`, ...) are left out.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator

PREFIXES = ("python_", "py_")
# Ranked distributions whose name is also what a project calls its own modules: a model that writes
# `from utils import safe_join` invents a helper; the PyPI `utils` does not make that call real.
GENERIC = frozenset({"api", "app", "auth", "common", "config", "core", "crypto", "db", "helpers", "lib",
                     "models", "security", "settings", "tools", "util", "utils"})
SUFFIXES = ("_binary", "_python", "_py")


def import_names(distribution: str) -> Iterator[str]:
    """The normalised distribution name and its name without a packaging prefix or suffix."""
    name = distribution.strip().lower().replace("-", "_").replace(".", "_")
    yield name
    for prefix in PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            yield name[len(prefix):]
    for suffix in SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            yield name[: -len(suffix)]


def ranked_import_names(rows: Iterable[dict[str, str]]) -> list[str]:
    names: set[str] = set()
    for row in rows:
        if (row.get("rank_among_15000_most_downloaded") or "").strip():
            names.update(import_names(row["name"]))
    return sorted(names - GENERIC)


def main() -> None:
    path = sys.argv[1]
    csv.field_size_limit(10**7)
    with open(path, encoding="utf-8", newline="") as fh:
        names = ranked_import_names(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    print(f"# import names of the ranked distributions in {path} (the 15,000 most downloaded);")
    print("# written by scripts/pypi_top_modules.py, see docs/oracle.md 'Known PyPI modules'")
    print("\n".join(names))


if __name__ == "__main__":
    main()
