"""Where a trial's processes sit: one placement group, the one definition every part of the runner uses.

Bundle 0 holds the trial process (Ray Tune's trainable, which writes the rows), bundle 1 the Driver
actor, and bundles 2… one ClientWorker each. Reserving them together means a trial starts only when all
of its actors fit, so trials competing for a cluster never deadlock; PACK puts them on as few nodes as
fit. The sweep reserves this layout through Tune, a trial run outside Tune reserves it itself, and the
Driver places each worker in its bundle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from runner.config import ResourcesConfig

Bundle = dict[str, float]
TRAINABLE_CPUS = 0.1  # the trial process mostly waits on the Driver and writes a row per round
TRAINABLE_BUNDLE, DRIVER_BUNDLE, FIRST_WORKER_BUNDLE = 0, 1, 2
STRATEGY = "PACK"


@dataclass(frozen=True)
class TrialLayout:
    """A trial's resource request: the trial process, its Driver and ``num_workers`` client workers."""

    driver_cpus: float
    worker_cpus: float
    worker_gpus: float
    num_workers: int

    @classmethod
    def of(cls, resources: ResourcesConfig) -> TrialLayout:
        return cls(resources.driver_cpus, resources.cpus_per_worker, resources.gpus_per_worker, resources.num_workers)

    @property
    def worker(self) -> Bundle:
        return {"CPU": self.worker_cpus, **({"GPU": self.worker_gpus} if self.worker_gpus else {})}

    def bundles(self) -> list[Bundle]:
        """The placement group's bundles, in bundle-index order."""
        return [{"CPU": TRAINABLE_CPUS}, {"CPU": self.driver_cpus}] + [self.worker for _ in range(self.num_workers)]

    def totals(self) -> Bundle:
        """CPU and GPU the whole trial holds."""
        return {"CPU": round(sum(b["CPU"] for b in self.bundles()), 6),
                "GPU": round(self.num_workers * self.worker_gpus, 6)}

    @staticmethod
    def worker_bundle(index: int) -> int:
        return FIRST_WORKER_BUNDLE + index

    def placement_group_factory(self) -> Any:
        """The same request as Ray Tune's per-trial resources."""
        from ray import tune

        return tune.PlacementGroupFactory(self.bundles(), strategy=STRATEGY)
