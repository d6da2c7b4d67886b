"""Whether a sweep's W&B runs are online, offline or disabled, and why: decided once, where the sweep starts.

Credentials are found the way W&B finds them: ``WANDB_API_KEY``, else the netrc entry (``$NETRC``,
``~/.netrc``, ``~/_netrc``) for the W&B host, which is ``WANDB_BASE_URL``, else the ``base_url`` that
``wandb login --host`` left in W&B's settings file, else https://api.wandb.ai. ``WANDB_MODE``,
``WANDB_DISABLED`` and the settings file's ``mode`` (``wandb offline``) are honored as W&B honors them.

The decision, with the key, travels to the trials inside the sweep's context (runner/study/sweep_context.py)
through Ray's object store, because a trial on a GPU node has neither the environment nor the netrc of the
node that started the sweep. The key is never printed, logged, or written to results or to a run's config.
"""

from __future__ import annotations

import configparser
import importlib.util
import netrc
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

from runner.config import ConfigError

DEFAULT_HOST = "https://api.wandb.ai"
MODES = ("online", "offline", "disabled")
_ALIASES = {"dryrun": "offline", "run": "online"}


@dataclass(frozen=True)
class WandbAccess:
    mode: str                                                # online | offline | disabled
    reason: str                                              # why, in words, for the sweep's start line
    host: str = DEFAULT_HOST
    api_key: str | None = field(default=None, repr=False)    # never shown

    def for_trial(self, requested: str) -> WandbAccess:
        """What a trial whose ``logging.wandb`` is ``requested`` uses: this decision for ``auto``, else the
        trial's own choice (online with whatever key was found, even where ``auto`` came out offline)."""
        if requested in ("auto", self.mode):
            return self
        return replace(self, mode=requested, reason=f"logging.wandb={requested}")

    def describe(self) -> str:
        return f"{self.mode} ({self.reason})"

    def line(self, requested: Iterable[str]) -> str:
        """The sweep's one line about W&B, for trials whose ``logging.wandb`` values are ``requested``."""
        values = sorted(set(requested))
        if len(values) == 1:
            return self.for_trial(values[0]).describe()
        return "; ".join(f"logging.wandb={v}: {self.for_trial(v).describe()}" for v in values)


def installed() -> bool:
    """Whether the wandb package is importable here (an offline bundle may be made without it)."""
    return importlib.util.find_spec("wandb") is not None


def refuse_unavailable(requested: Iterable[str]) -> None:
    """Before any cluster work: a trial that asks for W&B runs where wandb is not installed is refused."""
    wanted = sorted(set(requested) & {"online", "offline"})
    if wanted and not installed():
        raise ConfigError(f"logging.wandb: {wanted[0]} needs the wandb package, which is not installed here "
                          "(pip install wandb, or set logging.wandb=disabled)")


def resolve_access(requested: str = "auto") -> WandbAccess:
    """Decide the mode for ``logging.wandb: requested`` from this process's environment and files."""
    host = _host()
    if requested == "auto" and not installed():
        return WandbAccess("disabled", "the wandb package is not installed here", host)
    if requested in ("offline", "disabled"):
        return WandbAccess(requested, f"logging.wandb={requested}", host)
    key, source = _api_key(host)
    if requested == "online":
        return WandbAccess("online", f"logging.wandb=online, {source}", host, key)
    forced = _forced_mode()
    if forced is not None:
        mode, why = forced  # the key, if any, rides along for trials that ask for online themselves
        return WandbAccess(mode, f"{why}, {source}" if mode == "online" else why, host, key)
    if key:
        return WandbAccess("online", source, host, key)
    return WandbAccess("offline", f"{source}: run `wandb login` or set WANDB_API_KEY to log online; upload offline "
                                  "runs later with `wandb sync`", host)


def _forced_mode() -> tuple[str, str] | None:
    """A mode the user set for W&B as a whole: WANDB_MODE, WANDB_DISABLED, or the settings file's ``mode``."""
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    if env:
        return _mode(env), f"WANDB_MODE={env}"
    if os.environ.get("WANDB_DISABLED", "").strip().lower() in ("true", "1", "yes"):
        return "disabled", "WANDB_DISABLED is set"
    setting = _settings().get("mode", "").strip().lower()
    if setting:
        return _mode(setting), f"mode={setting} in {_settings_file()}"
    return None


def _mode(text: str) -> str:
    """W&B's spelling of a mode (``dryrun`` is offline); anything it does not know counts as offline."""
    mode = _ALIASES.get(text, text)
    return mode if mode in MODES else "offline"


def _api_key(host: str) -> tuple[str | None, str]:
    """(key, where it came from) or (None, where it was looked for)."""
    if os.environ.get("WANDB_API_KEY"):
        return os.environ["WANDB_API_KEY"], "API key from WANDB_API_KEY"
    machine = urlsplit(host).netloc
    path = _netrc_path()
    try:
        entry = netrc.netrc(str(path)).authenticators(machine)
    except FileNotFoundError:
        entry = None
    except (netrc.NetrcParseError, OSError) as error:
        return None, f"no API key: WANDB_API_KEY is unset and {path} cannot be read ({error})"
    if entry and entry[2]:
        return entry[2], f"API key from {path} for {machine}"
    return None, f"no API key: WANDB_API_KEY is unset and {path} has no entry for {machine}"


def _host() -> str:
    return (os.environ.get("WANDB_BASE_URL") or _settings().get("base_url") or DEFAULT_HOST).rstrip("/")


def _netrc_path() -> Path:
    """Where W&B reads (and `wandb login` writes) the netrc file."""
    if os.environ.get("NETRC"):
        return Path(os.environ["NETRC"]).expanduser()
    for name in ("~/.netrc", "~/_netrc"):
        if Path(name).expanduser().exists():
            return Path(name).expanduser()
    return Path("~/_netrc" if platform.system() == "Windows" else "~/.netrc").expanduser()


def _settings_file() -> Path:
    config_dir = os.environ.get("WANDB_CONFIG_DIR") or "~/.config/wandb"
    return Path(config_dir).expanduser() / "settings"


def _settings() -> dict[str, str]:
    """The ``[default]`` section of W&B's global settings file (written by `wandb login --host`, `wandb offline`)."""
    parser = configparser.ConfigParser()
    try:
        parser.read(_settings_file())
    except configparser.Error:
        return {}
    return dict(parser["default"]) if parser.has_section("default") else {}
