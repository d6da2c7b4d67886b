"""fedpara-runner: a Ray-distributed runner for FedPara studies.

Three rooms and a contract: ``engine`` runs one federated trial on Ray (actors, planning, aggregation,
transport); ``algorithms`` says what each FL algorithm computes, independent of where it runs; ``study``
turns sweep files into trials and trials into results (Tune, Parquet, W&B, figures). ``config`` is the
typed contract between them, validated once. The command lines are ``runner.sweep`` and ``runner.plot``.
"""
