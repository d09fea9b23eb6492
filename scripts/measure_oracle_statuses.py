"""Oracle statuses on SafeCoder train programs (docs/oracle.md): counts per language, failed analyzers."""
import collections
import time

from treeplay.eval.evaluate import default_data_root
from treeplay.oracle import Oracle, OracleConfig
from treeplay.tasks import load_tasks

tasks = load_tasks(default_data_root() / "safecoder" / "sec-new-desc.train.jsonl")
by = collections.defaultdict(list)
for t in tasks:
    if t.golden is not None and len(by[t.language]) < 40:
        by[t.language].append(t)
o = Oracle(OracleConfig(use_cache=False))
t0 = time.time()
for lang, ts in sorted(by.items()):
    items = [(t.prefix + t.golden, t.language, t) for t in ts] + [(t.prefix + (t.vulnerable or ""), t.language, t) for t in ts if t.vulnerable]
    vs = o.judge_many(items)
    c = collections.Counter(v.status for v in vs)
    failed = collections.Counter(a for v in vs for a in v.failed_analyzers)
    print(lang, len(items), dict(c), dict(failed))
print("s", round(time.time() - t0, 1))
o.close()
