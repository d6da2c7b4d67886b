"""The client-state bench runs as the README shows it, on a population small enough for the suite."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "client_state_scale.py"


def test_one_population_visits_every_client_and_writes_each_trained_state_once_a_checkpoint(tmp_path):
    # 20 clients, 5 a round (cyclic), a checkpoint every 2 rounds, 6 rounds: each checkpoint writes 10 new clients
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(BENCH.parents[1])}
    out = subprocess.run([sys.executable, str(BENCH), "--one", "20", "--clients", "10", "20", "--per-round", "5",
                          "--checkpoint-every", "2", "--min-rounds", "6", "--max-rounds", "6"],
                         check=True, capture_output=True, text=True, env=env, timeout=300).stdout
    row = json.loads(out.strip().splitlines()[-1])
    assert (row["rounds"], row["visited"], row["trained"]) == (6, 20, 30)
    assert row["clients_per_checkpoint"] == 10 and row["peak_states"] == 10  # this round's 5 and next round's 5
    state_kb = row["state_mib"] * 2**20 / 1e3
    assert state_kb <= row["delta_kb_per_client"] <= state_kb + 4  # a state's bytes and its share of a header
    assert row["resume_files"] <= 2 and row["run_peak_anon_mib"] >= row["round_anon_mib"] > 0
    assert not list((tmp_path / "fedpara-client-state").rglob("*.pt"))  # the spilled states deleted after the run
