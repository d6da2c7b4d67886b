"""``python -m runner.bundle``: one file that brings the runner and what it needs to a machine with no package
index (an air-gapped GPU cluster), for a Python version and platform other than this machine's.

GPU clusters in labs often reach no package index, yet have Python with a CUDA build of torch (and usually
NumPy, pandas, pyarrow). The bundle carries everything else: Ray, W&B and their dependencies, at the
versions installed here (the versions the tests ran with), as wheels built for the *target's* Python and
platform, unpacked into one site folder without what the runner never imports (Ray's Java jars, RLlib,
byte-code caches), plus the runner itself. It is one self-extracting shell script:

    python -m runner.bundle --python 3.12                      # dist/fedpara-offline-py3.12.sh; prints its size
    # on the target, from the checkout (or anywhere: the runner is in the bundle):
    sh fedpara-offline-py3.12.sh python3 -m runner.sweep sweeps/quickstart.yaml

The script unpacks itself once (into ``$FEDPARA_OFFLINE_DIR``, default ``~/.cache/fedpara-offline/<hash>``),
checks that the target's ``python3`` is the version the wheels were built for, and runs the command with the
site folder on ``PYTHONPATH`` (Ray's worker processes inherit it). What the target already has is left out:
``--have NAME ...`` (default: torch, torchvision, numpy, pandas, pyarrow) and/or ``--have-file`` with the
target's ``python3 -m pip freeze`` (a pinned package is left out only where the target has that very version).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_HAVE = ("torch", "torchvision", "numpy", "pandas", "pyarrow")
DEFAULT_PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                     "manylinux2014_x86_64", "manylinux1_x86_64")
# Paths (under the site folder) the runner never reaches: Ray's Java jars and RLlib; byte-code is rebuilt.
TRIM = ("ray/jars", "ray/rllib", "ray/cpp")
PAYLOAD_MARKER = "__FEDPARA_PAYLOAD_BELOW__"

LAUNCHER = r"""#!/bin/sh
# fedpara-runner offline bundle for Python {python} ({platform}); {count} packages. Made by runner.bundle.
# Usage: sh THIS_FILE COMMAND [ARG ...]   e.g.  sh THIS_FILE python3 -m runner.sweep sweeps/quickstart.yaml
# Unpacks once into $FEDPARA_OFFLINE_DIR (default ~/.cache/fedpara-offline/{digest}), then runs COMMAND with
# the bundle's site folder on PYTHONPATH. FEDPARA_PYTHON names the interpreter checked (default python3).
set -eu
dir="${{FEDPARA_OFFLINE_DIR:-$HOME/.cache/fedpara-offline/{digest}}}"
if [ ! -f "$dir/.complete" ]; then
    mkdir -p "$dir"
    sed '1,/^{marker}$/d' "$0" | tar -xJf - -C "$dir"
    touch "$dir/.complete"
fi
python="${{FEDPARA_PYTHON:-python3}}"
have=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || echo none)
if [ "$have" != "{python}" ]; then
    echo "fedpara offline bundle: built for Python {python}, but $python is $have (set FEDPARA_PYTHON)" >&2
    exit 2
fi
export PYTHONPATH="$dir/site${{PYTHONPATH:+:$PYTHONPATH}}"
export PATH="$dir/site/bin:$PATH"
if [ "$#" -eq 0 ]; then
    echo "unpacked in $dir; usage: sh $0 COMMAND [ARG ...]" >&2
    exit 0
fi
exec "$@"
exit 0
{marker}
"""


class BundleError(Exception):
    """A bundle that cannot be made as asked: the message says which input is wrong."""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
    if not match:
        raise BundleError(f"cannot read a package name from the requirement {requirement!r}")
    return canonical(match.group(0))


def project_requirements() -> list[str]:
    """The runner's own runtime dependencies, as pyproject.toml states them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return list(project["dependencies"])


def read_have_file(path: Path) -> dict[str, str | None]:
    """``pip freeze`` lines (``name==version``) or bare names, one a line; ``#`` starts a comment."""
    have: dict[str, str | None] = {}
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, _, version = line.partition("==")
        try:
            have[requirement_name(name)] = version.strip() or None
        except BundleError as error:
            raise BundleError(f"--have-file {path}, line {number}: {error}") from None
    return have


def installed_pins() -> list[str]:
    """``name==version`` for every distribution this interpreter has: the bundle takes the tested versions."""
    pins = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name and canonical(name) != "fedpara-runner":
            pins[canonical(name)] = f"{canonical(name)}=={dist.version}"
    return sorted(pins.values())


def pip(*args: str) -> None:
    """Run this interpreter's pip; a failure is raised with pip's own last words."""
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
        raise BundleError(f"pip {args[0]} failed:\n{tail}")


def target_args(python: str, platforms: tuple[str, ...]) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp"]
    for platform in platforms:
        args += ["--platform", platform]
    return args


def resolve(requirements: list[str], python: str, platforms: tuple[str, ...], work: Path) -> list[tuple[str, str]]:
    """(name, version) of every distribution the requirements need on the target, pinned where this machine
    has the package (pip's resolver, for the target's Python and platform, reading no wheel it need not)."""
    constraints = work / "constraints.txt"
    constraints.write_text("\n".join(installed_pins()) + "\n")
    report = work / "report.json"
    pip("install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
        "--target", str(work / "unused"), "-c", str(constraints), *target_args(python, platforms), *requirements)
    return [(canonical(i["metadata"]["name"]), i["metadata"]["version"])
            for i in json.loads(report.read_text())["install"]]


def left_out(resolved: list[tuple[str, str]], have: dict[str, str | None]) -> set[str]:
    """The resolved packages the target already has: by name, or by name and version where a pin was given."""
    return {name for name, version in resolved if name in have and have[name] in (None, version)}


def trim(site: Path) -> int:
    """Remove what the runner never imports; returns the bytes removed."""
    removed = 0
    doomed = [site / rel for rel in TRIM] + list(site.rglob("__pycache__"))
    for path in doomed:
        if path.exists():
            removed += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path)
    return removed


def size_mib(path: Path) -> float:
    return path.stat().st_size / 2**20


def pack(site: Path, out: Path, python: str, platform: str, count: int, preset: int = 6) -> str:
    """Write the self-extracting bundle: the launcher, then ``site`` as an xz tarball; returns its digest."""
    with tempfile.TemporaryDirectory(prefix="fedpara-pack-") as tmp:
        payload = Path(tmp) / "payload.tar.xz"
        with lzma.open(payload, "wb", preset=preset) as xz, tarfile.open(fileobj=xz, mode="w|") as tar:
            tar.add(site, arcname="site")
        digest = hashlib.sha256(payload.read_bytes()).hexdigest()[:16]
        out.parent.mkdir(parents=True, exist_ok=True)
        launcher = LAUNCHER.format(python=python, platform=platform, count=count, digest=digest,
                                   marker=PAYLOAD_MARKER)
        with open(out, "wb") as f:
            f.write(launcher.encode())
            with open(payload, "rb") as p:
                shutil.copyfileobj(p, f)
    out.chmod(0o755)
    return digest


def build(python: str, out: Path, have: dict[str, str | None], platforms: tuple[str, ...] = DEFAULT_PLATFORMS,
          wheels_cache: Path | None = None, with_project: bool = True, preset: int = 6) -> dict[str, object]:
    """Make the bundle at ``out``; returns what went in (packages, left-out, sizes) for the report."""
    if not re.fullmatch(r"3\.\d+", python):
        raise BundleError(f"--python: a version such as 3.12, got {python!r}")
    requirements = [r for r in project_requirements() if requirement_name(r) not in have]
    with tempfile.TemporaryDirectory(prefix="fedpara-bundle-") as tmp:
        work = Path(tmp)
        resolved = resolve(requirements, python, platforms, work)
        skipped = left_out(resolved, have)
        wanted = [(n, v) for n, v in resolved if n not in skipped]
        wheels = wheels_cache or work / "wheels"
        wheels.mkdir(parents=True, exist_ok=True)
        pip("download", "--no-deps", "--quiet", "-d", str(wheels), *target_args(python, platforms),
            *[f"{n}=={v}" for n, v in wanted])
        files = sorted(str(f) for f in wheels.glob("*.whl")
                       if any(_wheel_is(f.name, n, v) for n, v in wanted))
        if with_project:
            pip("wheel", "--no-deps", "--quiet", "-w", str(work / "project"), str(ROOT))
            files += [str(f) for f in (work / "project").glob("*.whl")]
        site = work / "bundle" / "site"
        pip("install", "--no-deps", "--no-compile", "--quiet", "--target", str(site),
            *target_args(python, platforms), *files)
        trimmed = trim(site)
        unpacked = sum(f.stat().st_size for f in site.rglob("*") if f.is_file())
        digest = pack(site, out, python, platforms[0], len(wanted), preset)
    return {"packages": wanted, "left_out": sorted(skipped), "unpacked_mib": unpacked / 2**20,
            "trimmed_mib": trimmed / 2**20, "bundle_mib": size_mib(out), "digest": digest}


def _wheel_is(filename: str, name: str, version: str) -> bool:
    """Whether a wheel file is the distribution ``name==version`` (wheel names escape ``-`` as ``_``)."""
    dist, _, rest = filename.partition("-")
    return canonical(dist) == name and rest.split("-", 1)[0] == version


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m runner.bundle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", default="{}.{}".format(*sys.version_info[:2]),
                        help="the target's Python version (default: this one's)")
    parser.add_argument("--platform", nargs="+", default=list(DEFAULT_PLATFORMS),
                        help="wheel platform tags the target accepts (default: x86-64 manylinux)")
    parser.add_argument("--have", nargs="*", default=None, metavar="NAME",
                        help=f"packages the target already has (default: {' '.join(DEFAULT_HAVE)})")
    parser.add_argument("--have-file", type=Path, default=None,
                        help="the target's `python3 -m pip freeze` (or one name a line): left out too")
    parser.add_argument("--without", nargs="*", default=[], metavar="NAME",
                        help="runner dependencies not to carry at all (e.g. wandb: logging.wandb=disabled)")
    parser.add_argument("--no-project", action="store_true", help="leave the runner itself out (use a checkout)")
    parser.add_argument("--wheels", type=Path, default=None, help="keep downloaded wheels here (reused)")
    parser.add_argument("--compression", type=int, default=6, choices=range(10), metavar="0-9",
                        help="xz preset: 0 is fast, 9 small (default 6)")
    parser.add_argument("--out", type=Path, default=None,
                        help="the bundle file (default: dist/fedpara-offline-py<python>.sh)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    have: dict[str, str | None] = {canonical(n): None for n in (DEFAULT_HAVE if args.have is None else args.have)}
    have.update({canonical(n): None for n in args.without})
    out = args.out or ROOT / "dist" / f"fedpara-offline-py{args.python}.sh"
    try:
        if args.have_file is not None:
            if not args.have_file.is_file():
                raise BundleError(f"--have-file: no such file: {args.have_file}")
            have.update(read_have_file(args.have_file))
        made = build(args.python, out, have, tuple(args.platform), args.wheels, not args.no_project,
                     args.compression)
    except BundleError as error:
        print(f"runner.bundle: {error}", file=sys.stderr)
        return 2
    packages = made["packages"]
    assert isinstance(packages, list)
    print(f"{len(packages)} packages for Python {args.python}: "
          + ", ".join(f"{n} {v}" for n, v in packages))
    print(f"left out (the target has them): {', '.join(made['left_out']) or 'nothing'}")  # type: ignore[arg-type]
    print(f"unpacked {made['unpacked_mib']:.1f} MiB (trimmed {made['trimmed_mib']:.1f} MiB); "
          f"bundle {out}: {made['bundle_mib']:.1f} MiB")
    print(f"on the target: sh {out.name} python3 -m runner.sweep sweeps/quickstart.yaml")
    return 0


if __name__ == "__main__":
    sys.exit(main())
