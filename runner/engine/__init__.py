"""The engine: one federated trial on Ray.

A trial is a Driver actor and its ClientWorker actors in one placement group (``layout``); each round the
Driver samples clients, ``planning`` spreads them over the workers, ``wire`` carries tensors through the
object store, workers train and pre-reduce their clients into exact sums (``aggregation``), and the Driver
applies the algorithm's server step. ``worker_pool``, ``recovery`` and ``checkpoint`` keep a trial alive
through worker failures; ``trial.run_rounds`` hands every round's row to the sinks it is given.
"""
