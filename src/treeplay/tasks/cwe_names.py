"""Human names of CWEs, from the offline `cwe2` catalogue (used in tables and reports)."""

from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _database():  # type: ignore[no-untyped-def]
    from cwe2.database import Database

    return Database()


@lru_cache(maxsize=2048)
def cwe_name(cwe: str) -> str:
    """'CWE-79' -> "Improper Neutralization of Input During Web Page Generation (...)"; '' if unknown."""
    try:
        number = int(cwe.upper().removeprefix("CWE-"))
        return str(_database().get(number).name)
    except Exception:  # unknown id or catalogue unavailable: a name is only decoration
        return ""
