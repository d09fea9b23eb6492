"""Which stages of a run dir are done (hash matches: reused) and which would run; nothing is run
or written. The same listing as `treeplay run CONFIG --check`, plus the stage hashes.

usage: python scripts/plan_run.py CONFIG RUN_DIR [OUT_JSON]
DRYRUN_FINGERPRINT=<16 hex> uses that oracle fingerprint instead of the installed oracle's (to
see what a run made under another oracle version would reuse).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from treeplay.pipeline import Pipeline, load_config


def main(argv: list[str]) -> None:
    config = load_config(Path(argv[1]))
    pipeline = Pipeline(config, Path(argv[2]), fingerprint=os.environ.get("DRYRUN_FINGERPRINT") or None)
    planned = pipeline.plan()
    for item in planned:
        print(("REUSE " if item.done else "RUN   ") + item.stage.name)
    print(f"{sum(p.done for p in planned)} of {len(planned)} stages done")
    if len(argv) > 3:
        dump = [(str(p.stage.directory), p.stage.inputs_hash) for p in planned]
        Path(argv[3]).write_text(json.dumps(dump, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(sys.argv)
