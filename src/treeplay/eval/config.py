"""`EvalConfig`: how a model is sampled on a benchmark (the sampling part of the eval stage).

The `eval:` section of a run config (`RunConfig.eval`, which adds the benches and per-bench task
limits), the options of `treeplay eval` and `treeplay.eval.evaluate.evaluate` read these fields.
Evaluation samples at T = 0.2 (the usual pass@1 / SPR@1 setting of the security benchmarks); the
other sampling defaults and every sampling help text come from `SamplingParams`.
"""

from __future__ import annotations

from dataclasses import dataclass

from treeplay.config_fields import inherit, option
from treeplay.policy.records import SamplingParams


@dataclass(frozen=True)
class EvalConfig:
    n: int = option(1, "Samples per task.", ge=1)
    temperature: float = inherit(SamplingParams, "temperature", default=0.2)
    top_p: float = inherit(SamplingParams, "top_p")
    max_new_tokens: int = inherit(SamplingParams, "max_new_tokens")
    batch_tasks: int = option(16, "Tasks sampled together (one batched generate); not part of the run's "
                                  "eval stage digest.", ge=1)

    def __post_init__(self) -> None:
        for name in ("n", "max_new_tokens", "batch_tasks"):
            if getattr(self, name) < 1:
                raise ValueError(f"EvalConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError(f"EvalConfig: temperature must be >= 0 and top_p in (0, 1], got "
                             f"{self.temperature}, {self.top_p}")
