"""A Ray cluster on this machine whose node types are ``cluster.yaml``'s: ``python -m runner.local_cluster up|down``.

Ray's autoscaler runs against it for real, with a node provider that starts each "node" as a set of Ray
processes here (``provider.py``), so the cluster path (the capacity check, the Jobs API, GPU worker nodes
launched on demand and removed when idle) can be tried on a laptop. ``config.py`` derives its autoscaling
config from ``cluster.yaml``; ``processes.py`` starts and stops it.
"""
