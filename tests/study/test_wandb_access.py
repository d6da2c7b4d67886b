"""W&B credentials found as W&B finds them (a fake HOME with a .netrc), one line at the sweep's start, and the
key handed to trial processes without landing in results or logs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runner.provenance import CodeVersion
from runner.study.sweep_context import SweepContext
from runner.study.wandb_access import resolve_access

KEY = "0123456789abcdef0123456789abcdef01234567"       # a made-up 40-character W&B key
OTHER_KEY = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty HOME, and none of W&B's variables: what a fresh shell after `wandb login` has, minus the login."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in ("WANDB_API_KEY", "WANDB_MODE", "WANDB_BASE_URL", "WANDB_DISABLED", "WANDB_CONFIG_DIR", "NETRC"):
        monkeypatch.delenv(name, raising=False)
    return home


def netrc(home: Path, entries: dict[str, str]) -> Path:
    """What `wandb login` writes: a machine entry per host, login user, the key as password."""
    path = home / ".netrc"
    path.write_text("".join(f"machine {host}\n  login user\n  password {key}\n" for host, key in entries.items()))
    path.chmod(0o600)
    return path


def test_a_wandb_login_netrc_entry_makes_runs_online(home):
    path = netrc(home, {"api.wandb.ai": KEY})
    access = resolve_access("auto")
    assert (access.mode, access.api_key, access.host) == ("online", KEY, "https://api.wandb.ai")
    assert access.reason == f"API key from {path} for api.wandb.ai"
    assert KEY not in repr(access) and KEY not in access.describe()


def test_the_host_is_wandb_base_url_or_the_one_wandb_login_host_saved(home, monkeypatch):
    netrc(home, {"api.wandb.ai": KEY, "wandb.example.com": OTHER_KEY})
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    access = resolve_access("auto")
    assert (access.api_key, access.host) == (OTHER_KEY, "https://wandb.example.com")

    monkeypatch.delenv("WANDB_BASE_URL")
    settings = home / ".config" / "wandb" / "settings"
    settings.parent.mkdir(parents=True)
    settings.write_text("[default]\nbase_url = https://wandb.example.com\n")
    assert resolve_access("auto").api_key == OTHER_KEY


def test_wandb_itself_reads_the_same_key_from_the_same_file(home, monkeypatch):
    wbauth = pytest.importorskip("wandb.sdk.lib.wbauth", reason="W&B's netrc reader has this home since 0.2x")
    netrc(home, {"api.wandb.ai": KEY, "wandb.example.com": OTHER_KEY})
    assert wbauth.read_netrc_auth(host="https://api.wandb.ai") == resolve_access("auto").api_key == KEY
    monkeypatch.setenv("WANDB_BASE_URL", "https://wandb.example.com")
    assert wbauth.read_netrc_auth(host="https://wandb.example.com") == resolve_access("auto").api_key == OTHER_KEY


def test_the_environment_wins_and_a_forced_mode_is_honored(home, monkeypatch):
    netrc(home, {"api.wandb.ai": KEY})
    monkeypatch.setenv("WANDB_API_KEY", OTHER_KEY)
    assert (resolve_access("auto").api_key, resolve_access("auto").reason) == (OTHER_KEY, "API key from WANDB_API_KEY")

    monkeypatch.setenv("WANDB_MODE", "offline")
    forced = resolve_access("auto")
    assert (forced.mode, forced.reason) == ("offline", "WANDB_MODE=offline")
    assert forced.for_trial("online").mode == "online" and forced.for_trial("online").api_key == OTHER_KEY
    assert resolve_access("disabled").mode == "disabled"


def test_no_credentials_means_offline_with_the_reason(home):
    access = resolve_access("auto")
    assert access.mode == "offline" and access.api_key is None
    assert f"no API key: WANDB_API_KEY is unset and {home / '.netrc'} has no entry for api.wandb.ai" in access.reason
    assert "wandb login" in access.reason


def test_a_trial_s_own_choice_overrides_the_sweep_s(home):
    netrc(home, {"api.wandb.ai": KEY})
    access = resolve_access("auto")
    assert access.for_trial("auto") is access
    assert access.for_trial("offline").mode == "offline"
    assert access.line({"auto"}) == f"online (API key from {home / '.netrc'} for api.wandb.ai)"
    assert access.line({"auto", "disabled"}).startswith("logging.wandb=auto: online (")


def test_the_sweep_prints_its_wandb_decision_once(home, tmp_path, capsys, monkeypatch):
    import ray
    from ray import tune

    from runner import sweep as sweep_cli

    class Tuner:  # stands in for tune.Tuner: nothing runs
        def __init__(self, trainable, **kwargs):
            pass

        def fit(self):
            return []

    from runner.study import tune_sweep
    from runner.study.capacity import Capacity, NodeShape

    monkeypatch.setattr(ray, "init", lambda **kwargs: None)
    monkeypatch.setattr(tune_sweep, "connected_cluster", lambda address: Capacity("c", (NodeShape("a", 4, 0),)))
    monkeypatch.setattr(tune, "Tuner", Tuner)
    netrc(home, {"api.wandb.ai": KEY})
    # 130: nothing ran, so the sweep ends saying it stopped before the end
    assert sweep_cli.main(["sweeps/quickstart.yaml", "--results", str(tmp_path / "r"), "--no-plot"]) == 130
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line.startswith("W&B:")]
    assert lines == [f"W&B: online (API key from {home / '.netrc'} for api.wandb.ai)"]
    assert KEY not in out


@pytest.mark.usefixtures("ray_session")
def test_the_key_reaches_trial_processes_and_no_file(home, tmp_path):
    from ray import tune

    key = KEY

    def probe(config, context=None):
        """A Tune trial: what reaches a trial process, and what that process would find by itself."""
        own = resolve_access("auto")  # the worker's HOME has no netrc with this key, its env says offline
        tune.report({"mode": context.wandb.mode, "key_matches": context.wandb.api_key == key,
                     "own_mode": own.mode, "own_has_key": own.api_key == key, "commit": context.code.commit})

    netrc(home, {"api.wandb.ai": KEY})
    context = SweepContext(resolve_access("auto"), CodeVersion("c0ffee", False))
    storage = tmp_path / "tune"
    grid = tune.Tuner(tune.with_parameters(probe, context=context), param_space={"i": tune.grid_search([0])},
                      run_config=tune.RunConfig(name="probe", storage_path=str(storage), verbose=0)).fit()
    seen = grid[0].metrics
    assert (seen["mode"], seen["key_matches"], seen["commit"]) == ("online", True, "c0ffee")
    assert (seen["own_mode"], seen["own_has_key"]) == ("offline", False)  # so it came with the context

    import ray

    session_logs = Path(ray._private.worker._global_node.get_session_dir_path()) / "logs"
    for root in (storage, session_logs):
        for path in root.rglob("*"):
            if path.is_file():
                assert KEY.encode() not in path.read_bytes(), path


def test_context_is_what_the_sweep_process_sees(home, monkeypatch):
    netrc(home, {"api.wandb.ai": KEY})
    monkeypatch.setenv("FEDPARA_CODE_VERSION", "abc123-dirty")
    context = SweepContext.here()
    assert context.wandb.mode == "online" and context.code == CodeVersion("abc123", True)
    assert KEY not in repr(context)
    assert os.environ.get("WANDB_API_KEY") is None  # resolving never sets the key in this process


def test_without_the_wandb_package_auto_is_disabled_and_an_explicit_mode_is_refused(home, monkeypatch):
    """An offline bundle may be made without W&B: the sweep runs without runs rather than failing each trial."""
    import importlib.util

    from runner.config import ConfigError
    from runner.study import wandb_access

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a))
    access = resolve_access("auto")
    assert (access.mode, access.reason) == ("disabled", "the wandb package is not installed here")
    wandb_access.refuse_unavailable(["auto", "disabled"])
    with pytest.raises(ConfigError, match=r"^logging.wandb: offline needs the wandb package"):
        wandb_access.refuse_unavailable(["disabled", "offline"])
    monkeypatch.setattr(importlib.util, "find_spec", real)
    wandb_access.refuse_unavailable(["offline"])  # installed: nothing to refuse
