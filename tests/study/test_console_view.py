"""The sweep's console: a compact progress block (counts, each running trial's round, an ETA) at most every
N seconds, and none of Tune's full result table."""

from __future__ import annotations

import re
import types

import pytest
from tiny_sweep import write_tiny_sweep

from runner.study.console_view import SweepProgress, TrialView, duration, progress_block


def test_the_block_counts_trials_shows_running_rounds_and_an_eta():
    trials = [TrialView("a", "TERMINATED", 10, 10), TrialView("b", "RUNNING", 4, 10),
              TrialView("c", "RUNNING", 7, 10), TrialView("d", "PENDING", 0, 10), TrialView("e", "ERROR", 3, 10)]
    first = {"a": 0, "b": 0, "c": 5, "d": 0, "e": 3}  # c resumed after round 5; e failed before doing any
    # this run did 10 + 4 + 2 = 16 rounds in 160 s; 6 + 3 + 10 are left: 190 s
    assert progress_block("fig4", trials, 160.0, first) == (
        "fig4 [2m40s]: 1 done, 2 running, 1 pending, 1 errored | rounds 24/50 | ETA 3m10s\n"
        "  running b round 4/10\n"
        "  running c round 7/10")
    assert progress_block("fig4", trials[:1], 7384.0, first, done=True) == (
        "fig4 [2h03m]: 1 done, 0 running, 0 pending | rounds 10/10 | finished")
    assert (duration(4.2), duration(65), duration(7384)) == ("4s", "1m05s", "2h03m")


def tune_trial(status: str, seed: int, round_: int | None) -> types.SimpleNamespace:
    config = {"base": {"data": {"dataset": "synthetic"}, "train": {"rounds": 5}}, "seed": seed}
    return types.SimpleNamespace(config=config, status=status, last_result={} if round_ is None else {"round": round_})


def test_the_reporter_prints_at_most_every_n_seconds_and_at_the_end():
    now, lines = [100.0], []
    progress = SweepProgress("s", every_s=30, rounds={"later": 5}, clock=lambda: now[0], write=lines.append)
    trials = [tune_trial("RUNNING", 0, 2), tune_trial("PENDING", 1, None)]
    asked = []
    for t in (100.0, 110.0, 129.0, 131.0, 140.0):
        now[0] = t
        if progress.should_report(trials):
            asked.append(t)
            progress.report(trials, done=False)
    assert asked == [100.0, 131.0]
    assert progress.should_report(trials, done=True)
    # a fresh run: both rounds of the running trial are this run's (31 s), 3 + 5 + 5 are left
    assert re.fullmatch(r"s \[31s\]: 0 done, 1 running, 2 pending \| rounds 2/15 \| ETA 3m22s\n"
                        r"  running synthetic-\S+-s0-\w+ round 2/5", lines[-1])


def test_a_resume_counts_earlier_rounds_from_the_first_line_and_only_this_runs_in_the_eta():
    now, lines = [0.0], []
    resumed = tune_trial("RUNNING", 1, None)  # restarted, no report yet in this run
    name = TrialView.of(resumed).name
    progress = SweepProgress("s", every_s=30, rounds={"done-before": 5, name: 5, "fresh": 5},
                             done_before={"done-before": 5, name: 2}, clock=lambda: now[0], write=lines.append)
    progress.report([resumed], done=False)
    assert lines[-1].splitlines() == ["s [0s]: 1 done, 1 running, 1 pending | rounds 7/15 | ETA -",
                                      f"  running {name} round 2/5"]  # not 0/5 before its first report
    now[0] = 20.0
    resumed.last_result = {"round": 4}
    progress.report([resumed], done=False)  # 2 rounds in 20 s, 1 + 5 left: 60 s
    assert lines[-1].splitlines()[0] == "s [20s]: 1 done, 1 running, 1 pending | rounds 9/15 | ETA 1m00s"


def test_a_trial_that_ran_whole_between_two_lines_counts_toward_the_eta():
    now, lines = [0.0], []
    progress = SweepProgress("s", every_s=30, rounds={"later": 5}, clock=lambda: now[0], write=lines.append)
    progress.report([], done=False)
    now[0] = 50.0
    progress.report([tune_trial("TERMINATED", 0, 5)], done=False)  # 5 rounds in 50 s; 5 left
    assert lines[-1] == "s [50s]: 1 done, 0 running, 1 pending | rounds 5/10 | ETA 50s"


def test_a_search_counts_the_trials_tune_has_not_created_yet(tmp_path):
    """Tune creates a search's trials one at a time: pending still counts every seeded draw (named in the
    record), or, for Optuna, every proposal still to come."""
    from runner.study.sweep_expand import expand
    from runner.study.sweep_file import load_sweep
    from runner.study.sweep_record import SweepRecord
    from runner.study.tune_sweep import progress_reporter

    sweep_file = write_tiny_sweep(tmp_path / "tiny.yaml", "tiny")
    sweep = load_sweep(sweep_file)
    points = expand(sweep, results_root=str(tmp_path))
    lines: list[str] = []
    flags = {"max_concurrent": None, "max_failures": 0}
    drawn = SweepRecord.of("tiny", "", {}, points, **flags, search={"algorithm": "random", "trials": 2})
    optuna = SweepRecord.of("tiny", "", {}, points[:1], **flags, search={"algorithm": "optuna", "trials": 6})
    for record, pending in ((drawn, 1), (optuna, 5)):
        progress = progress_reporter(sweep, points[:1], 30.0, record)
        progress._write = lines.append
        running = types.SimpleNamespace(config={"base": points[0].to_dict()}, status="RUNNING",
                                        last_result={"round": 1})
        progress.report([running], done=False)
        assert f"0 done, 1 running, {pending} pending" in lines[-1]


def test_a_sweep_prints_the_compact_block_and_not_tunes_table(finished_tiny_sweep):
    assert finished_tiny_sweep.code == 0
    out = finished_tiny_sweep.output  # two trials of one round (train.rounds=1), a block at every report
    heads = re.findall(r"^tiny \[\w+\]: (\d+) done, (\d+) running, (\d+) pending \| rounds (\d+)/2 \| (.*)$", out,
                       re.MULTILINE)
    assert heads and heads[-1] == ("2", "0", "0", "2", "finished")
    assert all(sum(map(int, head[:3])) == 2 for head in heads)
    for line in re.findall(r"^  running .*$", out, re.MULTILINE):
        assert re.fullmatch(r"  running synthetic-\S+-s[01]-\w+ round [01]/1", line)
    assert "Trial name" not in out and "== Status ==" not in out and "+----" not in out  # Tune's table
    assert "Trial status" not in out


def test_sigterm_says_how_to_resume_then_stops_like_ctrl_c(capsys):
    import os
    import signal
    import time

    from runner.console import stopping_says

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stopped, stopping_says("python -m runner.sweep s.yaml --resume"):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)  # interrupted long before
    assert stopped.value.code == 130
    err = capsys.readouterr().err
    assert err.startswith("stopped (SIGTERM); finished rounds and checkpoints are kept. "
                          "Resume with: python -m runner.sweep s.yaml --resume\n")
    assert signal.getsignal(signal.SIGTERM) == before  # put back
