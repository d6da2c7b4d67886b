"""One trial: a Driver actor and its client workers, reserved together, run round by round.

The trial process (a Ray Tune trainable, or any Ray driver script) creates the Driver, writes each
round's row to Parquet and W&B, then asks the Driver to checkpoint: a checkpoint never runs ahead of
the rows on disk. Between checkpoints the Driver starts the next round before the row is written, so
writing rows and logging overlap training. Started again with the same config, a trial resumes from its checkpoint, drops any
rows recorded after it, and redoes those rounds identically.

Resources: one placement group per trial holds the Driver's bundle and one bundle per worker, so a
trial starts only when all of its actors fit (no deadlock when many trials compete for a cluster).
Inside Tune, the trial's placement group comes from ``tune.with_resources`` (bundle 0 is the
trainable itself); outside Tune the trial reserves its own.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import ray
from ray.util.placement_group import placement_group, remove_placement_group
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

from partitions import check_available
from runner.config import TrialConfig
from runner.driver import Driver
from runner.results import RoundsTable, rounds_path
from runner.wandb_run import open_run

TRAINABLE_CPUS = 0.1
RESERVE_TIMEOUT_S = 120
METRICS_REPORTED = ("round", "test_accuracy", "test_loss", "train_loss", "cumulative_bytes", "round_seconds")


def trial_bundles(cfg: TrialConfig) -> list[dict[str, float]]:
    """Placement-group bundles: the trainable, the Driver, then one per client worker."""
    r = cfg.resources
    worker = {"CPU": r.cpus_per_worker, **({"GPU": r.gpus_per_worker} if r.gpus_per_worker else {})}
    return [{"CPU": TRAINABLE_CPUS}, {"CPU": r.driver_cpus}] + [dict(worker) for _ in range(r.num_workers)]


def trial_dir(cfg: TrialConfig) -> Path:
    return results_dir_of(cfg) / "trials" / cfg.trial_name


def results_dir_of(cfg: TrialConfig) -> Path:
    return Path(cfg.logging.results_dir).expanduser().absolute()


def _start_driver(cfg: TrialConfig, checkpoint: Path) -> tuple[Any, Any]:
    """Create the Driver in the trial's placement group; returns (driver, placement group we own or None)."""
    pg, owned, offset = ray.util.get_current_placement_group(), None, 1
    if pg is None:
        bundles = trial_bundles(cfg)[1:]
        pg = owned = placement_group(bundles, strategy="PACK")
        offset = 0
        ready, _ = ray.wait([pg.ready()], timeout=RESERVE_TIMEOUT_S)
        if not ready:
            remove_placement_group(pg)
            raise RuntimeError(
                f"trial {cfg.trial_name}: the cluster cannot reserve {bundles} "
                f"(available: {ray.available_resources()}); lower resources.* or add nodes")
    driver = ray.remote(Driver).options(
        num_cpus=cfg.resources.driver_cpus, max_restarts=0,
        scheduling_strategy=PlacementGroupSchedulingStrategy(pg, placement_group_bundle_index=offset),
    ).remote(cfg, str(checkpoint), offset + 1)
    return driver, owned


def run_trial(cfg: TrialConfig, *, report: Callable[[dict[str, Any]], None] | None = None) -> pd.DataFrame:
    """Run (or resume) one trial to its last round; returns all of its rows."""
    d = cfg.data
    check_available(d.dataset, os.path.expanduser(d.root), download=d.download)
    results_dir = results_dir_of(cfg)
    directory = trial_dir(cfg)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2))
    table = RoundsTable(rounds_path(results_dir, cfg.trial_name))

    driver, owned_pg = _start_driver(cfg, directory / "checkpoint.pt")
    run = None
    try:
        facts = ray.get(driver.facts.remote())
        start = facts.pop("round")
        table.truncate(start)
        if start and table.last_round < start:
            raise RuntimeError(f"trial {cfg.trial_name}: checkpoint at round {start} but rows end at "
                               f"{table.last_round}; delete {directory} to start over")
        run = open_run(cfg, results_dir)
        constants = {**cfg.flat(), "trial": cfg.trial_name, **facts}
        every = cfg.logging.checkpoint_every
        running = driver.run_round.remote() if start < cfg.train.rounds else None
        while running is not None:
            metrics = ray.get(running)
            index = metrics["round"]
            checkpoint = bool(every) and (index % every == 0 or index == cfg.train.rounds)
            running = None
            if index < cfg.train.rounds and not checkpoint:
                running = driver.run_round.remote()  # the next round trains while this row is written
            table.append({**constants, **metrics})
            if checkpoint:  # only after the row is on disk: a checkpoint never runs ahead of the rows
                ray.get(driver.save_checkpoint.remote())
                if index < cfg.train.rounds:
                    running = driver.run_round.remote()
            if run is not None:
                run.log({k: v for k, v in metrics.items() if k != "round"}, step=index)
            if report is not None:
                report({k: metrics[k] for k in METRICS_REPORTED})
        if run is not None:
            last = table.rows[-1]
            run.summary.update({"final_test_accuracy": last["test_accuracy"], "param_ratio": facts["param_ratio"],
                                "cumulative_bytes": last["cumulative_bytes"]})
    finally:
        if run is not None:
            run.finish()
        ray.kill(driver)
        if owned_pg is not None:
            remove_placement_group(owned_pg)
    return table.frame()


def tune_trainable(params: dict[str, Any]) -> None:
    """Ray Tune function trainable: ``params`` holds ``base`` plus the grid's dotted keys and ``variant``."""
    from ray import tune

    from runner.sweep_file import trial_config_from_tune

    run_trial(trial_config_from_tune(params), report=tune.report)
