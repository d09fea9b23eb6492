"""Validate the SALLM harness with the dataset's own insecure reference code (no model involved).

    nice -n 15 .venv/bin/python benchmarks/sallm_validate.py [--data ../shared/data/sallm] [--json out.json]

Runs every task's `insecure_code` against its unittest file in the sandbox and prints, per task,
whether the reference is caught by the security test, fails only the functional test, or passes
both (a weak test: the bench cannot tell that task's insecure solutions apart), then the counts.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from treeplay.eval.evaluate import default_data_root
from treeplay.eval.sallm_check import check_insecure, summary
from treeplay.tasks import load_tasks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default_data_root() / "sallm")
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds per task")
    parser.add_argument("--workers", type=int, default=1, help="tasks tested in parallel")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args()
    if not args.data.exists():
        print(f"SALLM not found at {args.data}", file=sys.stderr)
        return 2
    tasks = load_tasks(args.data, format="sallm", limit=args.limit)
    rows = check_insecure(tasks, timeout_s=args.timeout, workers=args.workers)
    for row in rows:
        print(f"{row.task_id:55s} {row.category:26s} {row.detail[:150]}")
    counts = summary(rows)
    print(json.dumps(counts, indent=2))
    weak = [r.task_id for r in rows if r.category.startswith("weak")]
    print("weak tests (insecure reference passes functional and security tests):", ", ".join(weak) or "none")
    if args.json:
        args.json.write_text(json.dumps({"counts": counts, "rows": [asdict(r) for r in rows]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
