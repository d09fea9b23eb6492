"""How each stage's inputs hash is made, so `treeplay rekey` can recompute it under another oracle
fingerprint and other upstream hashes without repeating the `digest(...)` arguments of
`treeplay.pipeline_stages` (the on-disk contract stays in one place).

`LineageBuilder` is the pipeline's `StageBuilder` that, for every stage it builds, also records its
`Lineage`: the inputs hashes of the stages upstream of it (the model it samples or trains from, the
data stage it trains on) and a function giving its hash for any oracle fingerprint and any
upstream hashes, by calling the same builder method again with them.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from treeplay.pipeline_stages import StageBuilder
from treeplay.run_config import Arm
from treeplay.stages import Stage

Rehash = Callable[[str, tuple[str, ...]], str]  # (oracle fingerprint, upstream hashes) -> inputs hash


@dataclass(frozen=True)
class Lineage:
    upstream: tuple[str, ...]  # the (current) inputs hashes of the upstream stages, in `rehash` order
    sources: tuple[Path | None, ...]  # their directories (None: the base model, not a stage)
    rehash: Rehash
    judged: bool  # the oracle fingerprint is in the hash (data and eval stages)


class LineageBuilder(StageBuilder):
    """A `StageBuilder` that records the lineage of every stage it builds, by directory."""

    lineage: dict[Path, Lineage]
    trained: dict[str, Path]  # train stage hash -> its directory (the latest built: the arm's own)

    def record_lineage(self) -> dict[Path, Lineage]:
        self.lineage, self.trained = {}, {}
        return self.lineage

    @contextlib.contextmanager
    def _under(self, fingerprint: str) -> Iterator[None]:
        """Build with another oracle fingerprint (and without touching the shared-data table)."""
        saved, data_done, trees_done, train_done = (self.fingerprint, dict(self.data_done), dict(self.trees_done),
                                                     dict(self.train_done))
        self.fingerprint = fingerprint
        try:
            yield
        finally:
            self.fingerprint, self.data_done, self.trees_done, self.train_done = saved, data_done, trees_done, train_done

    def eval_stages(self, seed: int, arm: str, model: str, model_hash: str,
                    benches: Sequence[str] | None = None) -> list[Stage]:  # fmt: skip
        stages = super().eval_stages(seed, arm, model, model_hash, benches)
        for stage in stages:
            bench = str(stage.bench)

            def rehash(fingerprint: str, upstream: tuple[str, ...], bench: str = bench) -> str:
                with self._under(fingerprint):
                    return super(LineageBuilder, self).eval_stages(seed, arm, model, upstream[0], [bench])[0].inputs_hash

            self.lineage[stage.directory] = Lineage((model_hash,), (self.trained.get(model_hash),), rehash, judged=True)
        return stages

    def data_stage(self, seed: int, arm: Arm, round_: int, opponent: str, opponent_hash: str) -> Stage:
        stage = super().data_stage(seed, arm, round_, opponent, opponent_hash)

        def rehash(fingerprint: str, upstream: tuple[str, ...]) -> str:
            with self._under(fingerprint):
                return super(LineageBuilder, self).data_stage(seed, arm, round_, opponent, upstream[0]).inputs_hash

        self.lineage[stage.directory] = Lineage((opponent_hash,), (self.trained.get(opponent_hash),), rehash,
                                                judged=True)  # fmt: skip
        return stage

    def train_stage(self, seed: int, arm: Arm, round_: int, model_in: str, model_hash: str, data: Stage) -> Stage:
        stage = super().train_stage(seed, arm, round_, model_in, model_hash, data)

        def rehash(fingerprint: str, upstream: tuple[str, ...]) -> str:
            old_data = dataclasses.replace(data, inputs_hash=upstream[1])
            return super(LineageBuilder, self).train_stage(seed, arm, round_, model_in, upstream[0], old_data).inputs_hash

        sources = (self.trained.get(model_hash), data.directory)
        self.lineage[stage.directory] = Lineage((model_hash, data.inputs_hash), sources, rehash, judged=False)
        self.trained[stage.inputs_hash] = stage.directory
        return stage
