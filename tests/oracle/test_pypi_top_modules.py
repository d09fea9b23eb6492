"""scripts/pypi_top_modules.py: which PyPI rows become known import names (hand-written rows)."""

from __future__ import annotations

import csv
import importlib.util
import io
from pathlib import Path

_PATH = Path(__file__).resolve().parents[2] / "scripts" / "pypi_top_modules.py"
_SPEC = importlib.util.spec_from_file_location("pypi_top_modules", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
script = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(script)

TSV = """name\tversion\tmonth\trank_among_15000_most_downloaded\tsummary
boto3\t1.44.5\t2026-11\t1\tThe AWS SDK for Python
python-dateutil\t2.9.0\t2024-03\t13\tExtensions to datetime
psycopg2-binary\t2.9.10\t2024-10\t300\tpsycopg2 wheels
zope.interface\t7.0\t2024-08\t400\tInterfaces
utils\t1.0.2\t2023-02\t9000\ta generic name
fludrsa\t0.1\t2010-01\t\tnot ranked: left out
"""


def test_ranked_rows_give_their_name_and_their_unaffixed_import_name() -> None:
    rows = csv.DictReader(io.StringIO(TSV), delimiter="\t", quoting=csv.QUOTE_NONE)
    assert script.ranked_import_names(rows) == [
        "boto3", "dateutil", "psycopg2", "psycopg2_binary", "python_dateutil", "zope_interface",
    ]


def test_the_shipped_list_has_the_modules_the_functional_check_relies_on() -> None:
    shipped = Path(__file__).resolve().parents[2] / "src" / "treeplay" / "oracle" / "data" / "pypi_top.txt"
    names = set(shipped.read_text().splitlines())
    assert {"boto3", "psycopg2", "tensorflow", "requests", "dateutil"} <= names
    assert not {"utils", "config", "fludrsa"} & names
