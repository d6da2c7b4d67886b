"""Which Ray a command joins: the one named by ``--address``, the cluster a Ray job runs on, or a new local one.

Ray's own default follows ``RAY_ADDRESS`` and the address file a head leaves in ``/tmp/ray``. Both outlive
what they point at: ``export RAY_ADDRESS=http://localhost:8265`` (set for ``ray job submit``) makes a later
``ray.init()`` in that shell fail, and the file left by a head that died makes it retry a dead GCS for
minutes. So a command line starts its own embedded Ray unless told otherwise, with two exceptions: an
explicit ``--address``, and a Ray job's entrypoint, whose supervisor sets ``RAY_ADDRESS`` to the cluster the
job runs on (and ``RAY_JOB_CONFIG_JSON_ENV_VAR``, which is how a job is recognized).
"""

from __future__ import annotations

import os
from pathlib import Path

JOB_MARKER = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job supervisor for a job's entrypoint process
ADDRESS_VAR = "RAY_ADDRESS"
LOCAL = "local"  # ray.init(address="local"): always a new embedded Ray, whatever the environment says
JOB_RESULTS = Path("~/fedpara-results")  # a job's default results root: outlives the job's working directory


def in_ray_job() -> bool:
    """Whether this process is a Ray job's entrypoint (``ray job submit ... -- <this>``)."""
    return JOB_MARKER in os.environ


def ray_address(address: str | None) -> str:
    """What to hand ``ray.init(address=...)``: ``--address`` as given; in a job, the job's own cluster; else a new
    local Ray."""
    if address:
        return address
    if in_ray_job():
        return os.environ.get(ADDRESS_VAR) or "auto"
    return LOCAL


def cluster_to_check(address: str | None) -> str | None:
    """The cluster a dry run checks trials against: ``--address``, or the one a job runs on; None: this machine."""
    return address or (ray_address(None) if in_ray_job() else None)


def ray_description(address: str | None) -> str:
    """The sweep's one line about which Ray it uses."""
    if address:
        return f"the cluster at {address} (--address)"
    if in_ray_job():
        return f"the cluster this Ray job runs on ({ray_address(None)})"
    return "a new local Ray on this machine (--address joins a running cluster)"


def ignored_environment(address: str | None) -> str | None:
    """A note when ``RAY_ADDRESS`` is set but this command starts its own Ray (so the user is not surprised)."""
    value = os.environ.get(ADDRESS_VAR)
    if address or in_ray_job() or not value:
        return None
    return (f"note: {ADDRESS_VAR}={value} is not followed; this command starts its own local Ray "
            f"(pass --address {value if '://' not in value else 'auto'} to join a running cluster)")


def job_results_root(given: str | None, default: str) -> str:
    """The results root of a sweep: in a Ray job, a path relative to the job's working directory is refused (that
    directory is Ray's temporary copy of the upload, gone after the job) and the default is
    ``~/fedpara-results``; elsewhere ``given`` or ``default``. Raises ValueError naming ``--results``."""
    from runner.engine.storage import is_uri

    if not in_ray_job():
        return given or default
    if given is None:
        return str(JOB_RESULTS.expanduser())
    if not is_uri(given) and not Path(given).expanduser().is_absolute():
        raise ValueError(f"--results {given}: a relative path inside a Ray job lands in the job's temporary "
                         f"working directory ({os.getcwd()}), which Ray deletes later; give a URI "
                         "(s3://<bucket>/<prefix>) or an absolute path every node shares")
    return given
