"""What the Driver does when a client worker fails: restore the trial from its checkpoint and replay.

Training is deterministic (a client's randomness derives from seed, round and client, and sums are
exact), so reloading the last checkpoint into every actor and replaying the rounds since brings the
trial back to exactly where it was; the failed step is then tried again. :func:`retrying` is the one
retry loop, used for every Driver step that calls the workers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from ray.exceptions import ActorUnavailableError, RayActorError

from runner.engine.checkpoint import CheckpointFile
from runner.engine.worker_pool import RESTART_WAIT_S, WORKER_RESTARTS, WorkerPool, WorkerRestarted

log = logging.getLogger(__name__)
WORKER_FAILURES = (RayActorError, ActorUnavailableError, WorkerRestarted)
T = TypeVar("T")


class Restorable(Protocol):
    """The part of the Driver that recovery drives."""

    round: int
    pool: WorkerPool
    checkpoint: CheckpointFile
    initial_local: Any
    initial_global: Any

    def restore_newest(self) -> None: ...

    def replay_round(self) -> None: ...


def retrying(step: Callable[[], T], trial: Restorable, what: str) -> T:
    """Run a Driver step; when a client worker fails, restore the trial and run it again (a few times)."""
    for attempt in range(WORKER_RESTARTS + 1):
        try:
            return step()
        except WORKER_FAILURES as error:
            if attempt == WORKER_RESTARTS:
                raise
            log.warning("a client worker failed during %s of round %d (%s); restoring and redoing it",
                        what, trial.round + 1, error)
            restore_and_replay(trial)
    raise AssertionError("unreachable")


def restore_and_replay(trial: Restorable) -> None:
    """Set every worker up again (waiting for restarts), reload the checkpoint and replay up to where the
    trial was."""
    target = trial.round
    trial.pool.setup(trial.initial_local, trial.initial_global, wait_s=RESTART_WAIT_S)
    trial.restore_newest()
    while trial.round < target:
        trial.replay_round()
