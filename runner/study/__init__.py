"""The study layer: sweep files become trials, trials become results.

``sweep_file`` expands a study written as YAML into validated trial configs, ``tune_sweep`` runs them as a
Ray Tune experiment, ``trial`` runs one with the standard sinks (``results``: Parquet rows; ``wandb_run``:
a W&B run), and ``figures`` draws the paper's figures and tables from the rows.
"""
