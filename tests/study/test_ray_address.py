"""Which Ray a command joins: --address, the cluster a Ray job runs on, or its own local Ray, whatever
RAY_ADDRESS or a dead head's address file says; and where a job's results go."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_sweep import write_tiny_sweep

from runner import sweep as sweep_cli
from runner.study import ray_address as ra


@pytest.fixture
def plain_shell(monkeypatch):
    for name in (ra.ADDRESS_VAR, ra.JOB_MARKER):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_local_command_starts_its_own_ray_whatever_ray_address_says(plain_shell):
    assert ra.ray_address(None) == "local" and ra.ignored_environment(None) is None
    plain_shell.setenv(ra.ADDRESS_VAR, "http://localhost:8265")  # as exported for `ray job submit`
    assert ra.ray_address(None) == "local"
    assert ra.ignored_environment(None) == ("note: RAY_ADDRESS=http://localhost:8265 is not followed; this command "
                                            "starts its own local Ray (pass --address auto to join a running "
                                            "cluster)")
    assert ra.ray_address("10.0.0.5:6379") == "10.0.0.5:6379" and ra.ignored_environment("auto") is None
    assert ra.cluster_to_check(None) is None and ra.cluster_to_check("auto") == "auto"


def test_a_ray_jobs_entrypoint_joins_the_cluster_it_runs_on(plain_shell):
    plain_shell.setenv(ra.JOB_MARKER, "{}")
    plain_shell.setenv(ra.ADDRESS_VAR, "127.0.0.1:6379")  # what the job supervisor sets
    assert ra.in_ray_job()
    assert ra.ray_address(None) == "127.0.0.1:6379" == ra.cluster_to_check(None)
    assert ra.ignored_environment(None) is None
    assert ra.ray_description(None) == "the cluster this Ray job runs on (127.0.0.1:6379)"


def test_a_jobs_results_outlive_its_working_directory(plain_shell, tmp_path):
    assert ra.job_results_root(None, "results") == "results"  # not a job: as before
    assert ra.job_results_root("rel", "results") == "rel"
    plain_shell.setenv(ra.JOB_MARKER, "{}")
    assert ra.job_results_root(None, "results") == str(Path("~/fedpara-results").expanduser())
    assert ra.job_results_root("s3://bucket/fedpara", "results") == "s3://bucket/fedpara"
    assert ra.job_results_root(str(tmp_path), "results") == str(tmp_path)
    with pytest.raises(ValueError, match=r"^--results results: a relative path inside a Ray job lands in the "
                                         r"job's temporary working directory"):
        ra.job_results_root("results", "results")


def test_the_sweep_hands_ray_init_a_local_address_under_a_stale_ray_address(plain_shell, tmp_path, capsys,
                                                                           ray_session):
    import ray

    calls = []
    plain_shell.setattr(ray, "init", lambda **kwargs: calls.append(kwargs))  # the session's Ray is already up
    plain_shell.setenv(ra.ADDRESS_VAR, "http://localhost:8265")
    sweep_file = write_tiny_sweep(tmp_path / "tiny.yaml", "tiny")
    argv = [str(sweep_file), "train.rounds=1", "seed=0", "--results", str(tmp_path / "r"), "--no-plot"]  # one trial
    assert sweep_cli.main(argv) == 0
    assert calls == [{"address": "local"}]
    out = capsys.readouterr().out
    assert "Ray: a new local Ray on this machine" in out and "RAY_ADDRESS=http://localhost:8265 is not followed" in out


def test_a_relative_results_path_in_a_job_is_refused_before_anything_starts(plain_shell, tmp_path, capsys):
    plain_shell.setenv(ra.JOB_MARKER, "{}")
    plain_shell.chdir(tmp_path)
    sweep_file = write_tiny_sweep(tmp_path / "tiny.yaml", "tiny")
    assert sweep_cli.main([str(sweep_file), "--results", "results"]) == 2
    assert "--results results: a relative path inside a Ray job" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()
