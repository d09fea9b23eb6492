"""Hand-built code shared by the tree tests."""

from __future__ import annotations

PREFIX = "import sqlite3\n\ndef get_user(db, name):\n"
GOLDEN = (
    "    cur = db.cursor()\n"
    '    cur.execute("SELECT * FROM users WHERE name = ?", (name,))\n'
    "    return cur.fetchone()\n"
)
VULNERABLE = (
    "    cur = db.cursor()\n"
    "    cur.execute(\"SELECT * FROM users WHERE name = '%s'\" % name)\n"
    "    return cur.fetchone()\n"
)
