"""One trial run round by round: the Driver and its workers reserved together, rows handed to sinks.

The trial process (a Ray Tune trainable, or any Ray driver script) creates the Driver in the trial's
placement group (runner/engine/layout.py), hands each round's row to every sink (a Parquet file, a W&B
run, Tune's report: each one small :class:`RoundSink`), then asks the Driver to checkpoint: a checkpoint
never runs ahead of the rows. Between checkpoints the Driver runs rounds back to back and streams each
row as it is ready (a Ray generator), so writing overlaps training and no round waits for the trial
process. Started again with the same config, a trial resumes from its
checkpoint: the sinks are told the round it resumes after, and the rounds after it are redone identically.
What a sink keeps with the checkpoint (:meth:`RoundSink.state`: the rows so far) comes back to it on a
resume (:meth:`RoundSink.restore`), so a sink whose own file was damaged continues from there. A round
that diverges (runner/engine/driver.py) is the trial's last: its row reaches the sinks, the checkpoint
records it, and the trial ends as finished (the row says it diverged).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from runner.config import TrialConfig
from runner.engine.checkpoint import trial_dir
from runner.engine.driver import Driver
from runner.engine.layout import DRIVER_BUNDLE, STRATEGY, TrialLayout

log = logging.getLogger(__name__)
RESERVE_TIMEOUT_S = 120
CLOSE_TIMEOUT_S = 60


class RoundSink:
    """Somewhere a trial's rows go. A sink does one thing with them; the defaults do nothing."""

    def open(self, resumed_after: int, constants: Mapping[str, Any]) -> None:
        """Before the first row; ``resumed_after`` is the round the trial continues after (0: a fresh start)."""

    def write(self, row: Mapping[str, Any]) -> None:
        """One round's row: the flat config, the trial's constants and the round's metrics."""

    def close(self, completed: bool) -> None:
        """After the last round (``completed``), or when the trial stops on an error."""

    def state(self) -> Any:
        """What this sink keeps with each checkpoint (plain values and tensors); None: nothing."""
        return None

    def restore(self, state: Any) -> None:
        """Before :meth:`open` on a resume: what :meth:`state` gave when the checkpoint was written."""


def sink_key(sink: RoundSink) -> str:
    return type(sink).__name__


def run_rounds(cfg: TrialConfig, sinks: Sequence[RoundSink]) -> None:
    """Run (or resume) one trial to its last round, handing every row to every sink in order."""
    driver, owned_pg = _start_driver(cfg)
    opened: list[RoundSink] = []
    completed = False
    try:
        constants = {**cfg.flat(), "trial": cfg.trial_name, **ray.get(driver.facts.remote())}
        resume = ray.get(driver.resume_point.remote())
        start, diverged = resume["round"], resume["diverged"]
        for sink in sinks:
            if sink_key(sink) in resume["sinks"]:
                sink.restore(resume["sinks"][sink_key(sink)])
            sink.open(start, constants)
            opened.append(sink)
        every, last = cfg.logging.checkpoint_every, cfg.train.rounds
        done = start
        while done < last and diverged is None:
            stop = min(last, (done // every + 1) * every) if every else last  # the next checkpoint, or the end
            for ref in driver.run_rounds.remote(stop):  # rows stream in while the Driver runs the next round
                row = {**constants, **ray.get(ref)}
                for sink in sinks:
                    sink.write(row)
                diverged = row.get("diverged")
            done = stop if diverged is None else row["round"]
            if every:  # only after every sink has the rows: a checkpoint never runs ahead of the rows
                states = {sink_key(s): s.state() for s in sinks}
                ray.get(driver.save_checkpoint.remote({k: v for k, v in states.items() if v is not None}))
        if diverged is not None:
            log.warning("trial %s diverged at round %d (%s): stopped there, its other rounds are not run",
                        cfg.trial_name, done, diverged)
        completed = True
    finally:
        for sink in opened:
            sink.close(completed)
        try:
            ray.get(driver.close.remote(), timeout=CLOSE_TIMEOUT_S)
        except Exception as error:  # a failed worker keeps its folder; its next incarnation deletes it
            log.warning("trial %s: client workers could not delete their local client states: %s",
                        cfg.trial_name, error)
        ray.kill(driver)
        if owned_pg is not None:
            remove_placement_group(owned_pg)


def _start_driver(cfg: TrialConfig) -> tuple[Any, Any]:
    """Create the Driver in the trial's placement group: Tune's, or one reserved here (returned to be freed)."""
    pg, owned = ray.util.get_current_placement_group(), None
    if pg is None:
        bundles = TrialLayout.of(cfg.resources).bundles()
        pg = owned = placement_group(bundles, strategy=STRATEGY)
        ready, _ = ray.wait([pg.ready()], timeout=RESERVE_TIMEOUT_S)
        if not ready:
            remove_placement_group(pg)
            raise RuntimeError(
                f"trial {cfg.trial_name}: the cluster cannot reserve {bundles} "
                f"(available: {ray.available_resources()}); lower resources.* or add nodes")
    driver = ray.remote(Driver).options(
        num_cpus=cfg.resources.driver_cpus, max_restarts=0,
        scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=DRIVER_BUNDLE),
    ).remote(cfg, str(trial_dir(cfg)))
    return driver, owned
