"""One run of a sweep at a time: a lease in the sweep's results, taken at start, renewed while it runs.

Two runs of one sweep (a job submitted twice, a ``--resume`` started while the first run still runs) would
write the same trials' rows and checkpoints. ``<results>/<sweep>/lease.json`` says who runs the sweep (host,
pid, start time, a random token) and counts its renewals; the running sweep renews it every third of
``ttl_s`` and deletes it at the end. A second start that finds it watches it, on its own clock (hosts' clocks
need not agree): renewed within ``ttl_s``, its holder is alive and the start is refused naming it; not renewed
for a whole ``ttl_s``, its holder is gone (killed, its node lost) and the lease is taken over, so a ``--resume``
after a crash needs nothing by hand. A lease held by a process of this host that no longer exists is taken
over at once.

The results may be an object store, where a put is last-writer-wins and there is no compare-and-swap: a start
writes its lease, waits ``settle_s`` and reads it back, and backs off (refused, naming the other) when another
start's lease is there. Two starts whose read and write interleave within ``settle_s`` are told apart this way;
closer than that cannot happen from one person's commands, and the loser is refused before it writes a row.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

from runner.engine.storage import Location
from runner.results_layout import LEASE, lease_file

log = logging.getLogger(__name__)
LEASE_NAME = LEASE  # the name's home: runner/results_layout.py
LEASE_TTL_S = 60.0  # a lease not renewed for this long belongs to a run that is gone
SETTLE_S = 1.0      # between writing a lease and reading it back (two starts at once: the last write wins)


class SweepRunning(RuntimeError):
    """Another run of this sweep holds its lease: the message names it (host, pid, start time)."""


@dataclass(frozen=True)
class Holder:
    """Who holds a sweep's lease; ``renewals`` changes at every renewal."""

    host: str
    pid: int
    started: str  # UTC, ISO 8601
    token: str
    renewals: int = 0

    def describe(self) -> str:
        return f"host {self.host}, pid {self.pid}, started {self.started}"


class SweepLease:
    """The lease of the sweep whose results are ``results_dir``; ``held()`` takes, renews and releases it."""

    def __init__(self, results_dir: str | Location, *, ttl_s: float = LEASE_TTL_S, settle_s: float = SETTLE_S,
                 say: Callable[[str], None] = print) -> None:
        self.path = lease_file(results_dir)
        self.ttl_s, self.settle_s, self.say = ttl_s, settle_s, say
        started = datetime.now(UTC).isoformat(timespec="seconds")
        self.mine = Holder(socket.gethostname(), os.getpid(), started, uuid.uuid4().hex)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lease while the block runs (renewed from a thread); :class:`SweepRunning` when another run
        holds it."""
        self.acquire()
        stop = threading.Event()
        renewer = threading.Thread(target=self._renew_until, args=(stop,), name="sweep-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            self.release()

    def acquire(self) -> None:
        held = self.read()
        if held is not None and held.token != self.mine.token and not self._gone(held):
            self._wait_out(held)
        self._write(self.mine)
        time.sleep(self.settle_s)
        now = self.read()
        if now is None or now.token != self.mine.token:
            raise self._refusal(now, "started at the same moment as this one")

    def renew(self) -> None:
        now = self.read()
        if now is not None and now.token != self.mine.token:
            log.error("%s: this run's lease was taken over by %s (it was not renewed for %g s: storage unreachable?); "
                      "both runs now write this sweep's trials: stop one", self.path, now.describe(), self.ttl_s)
            return
        self.mine = replace(self.mine, renewals=self.mine.renewals + 1)
        self._write(self.mine)

    def release(self) -> None:
        now = self.read()
        if now is not None and now.token == self.mine.token:
            self.path.delete()

    def read(self) -> Holder | None:
        try:
            return Holder(**json.loads(self.path.read_bytes()))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as error:  # not a lease this runner wrote: nobody holds it
            log.warning("%s is not a lease (%s): taken over", self.path, error)
            return None

    def _write(self, holder: Holder) -> None:
        self.path.write_bytes(json.dumps(asdict(holder)).encode())

    def _gone(self, held: Holder) -> bool:
        """Whether the holder is a process of this host that no longer exists."""
        if held.host != self.mine.host:
            return False
        try:
            os.kill(held.pid, 0)
        except ProcessLookupError:
            self.say(f"{self.path}: its run ({held.describe()}) has ended without releasing it; taking it over")
            return True
        except PermissionError:
            pass
        return False

    def _wait_out(self, held: Holder) -> None:
        """Watch the lease for ``ttl_s``: refused when its holder renews it, returns when it does not."""
        self.say(f"{self.path}: held by {held.describe()}; watching it for up to {self.ttl_s:g} s to see whether "
                 "that run is still renewing it")
        deadline = time.monotonic() + self.ttl_s
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, self.ttl_s / 10))
            now = self.read()
            if now is None:
                return  # released
            if now != held:
                raise self._refusal(now, "it renewed its lease while this run waited")
        self.say(f"{self.path}: not renewed for {self.ttl_s:g} s, so its run ({held.describe()}) is gone; "
                 "taking it over")

    def _refusal(self, holder: Holder | None, how: str) -> SweepRunning:
        who = holder.describe() if holder is not None else "another run, which has ended since"
        return SweepRunning(
            f"this sweep is already running ({who}; {how}): two runs would write the same trials' rows and "
            f"checkpoints. Wait for it to end or stop it; a run that crashed leaves its lease ({self.path}) to "
            f"expire {self.ttl_s:g} s after its last renewal, and a start after that takes it over")

    def _renew_until(self, stop: threading.Event) -> None:
        while not stop.wait(self.ttl_s / 3):
            try:
                self.renew()
            except OSError as error:  # the next renewal tries again; a lease not renewed for ttl_s can be taken
                log.warning("%s: could not renew the sweep's lease: %s", self.path, error)
