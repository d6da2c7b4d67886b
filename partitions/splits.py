"""How a dataset's samples are dealt to clients: IID, Dirichlet(α) over labels, pathological shards, natural users.

Every function is deterministic for a seed and returns one index array per client. The non-natural
splits assign every training sample to exactly one client. Each client also gets its own held-out test
samples: its natural user's test data, or else test samples dealt to match the client's training label
mix, so a personalized model is scored on the distribution it was trained for. :func:`hold_out` sets a fraction
of each client's training samples aside as validation data (what a search tunes on), and :func:`subsample` then
keeps a fraction of each client's training samples (scarce local data); both leave its test samples alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from partitions.dataset import FederatedDataset

SCHEMES = ("iid", "dirichlet", "pathological", "natural")
DIRICHLET_ATTEMPTS = 1000
SUBSAMPLE_STREAM = 2  # subsample draws from its own stream of the seed (the test deal uses seed + 1)
HOLD_OUT_STREAM = 3  # and hold_out from another


@dataclass(frozen=True)
class ClientPartition:
    train: list[np.ndarray]  # client k's indices into x_train
    test: list[np.ndarray]  # client k's indices into x_test (its own held-out data)


def iid_split(num_samples: int, num_clients: int, seed: int) -> list[np.ndarray]:
    order = np.random.default_rng(seed).permutation(num_samples)
    return [np.sort(part) for part in np.array_split(order, num_clients)]


def _cut(indices: np.ndarray, shares: np.ndarray) -> list[np.ndarray]:
    """Split ``indices`` by the proportions ``shares`` (largest-remainder rounding, nothing lost)."""
    exact = shares / shares.sum() * len(indices)
    counts = np.floor(exact).astype(int)
    counts[np.argsort(counts - exact)[: len(indices) - counts.sum()]] += 1
    return np.split(indices, np.cumsum(counts)[:-1])


def dirichlet_split(labels: np.ndarray, num_clients: int, alpha: float, seed: int,
                    min_size: int = 10) -> list[np.ndarray]:
    """Each class's samples spread over clients by proportions drawn from Dir(α); smaller α, more skew.

    Draws are repeated until every client has at least ``min_size`` samples (capped at half the fair
    share, so small datasets stay feasible).
    """
    rng = np.random.default_rng(seed)
    floor = min(min_size, len(labels) // (2 * num_clients))
    for _ in range(DIRICHLET_ATTEMPTS):
        clients: list[list[np.ndarray]] = [[] for _ in range(num_clients)]
        for c in np.unique(labels):
            idx = rng.permutation(np.flatnonzero(labels == c))
            for k, part in enumerate(_cut(idx, rng.dirichlet(np.full(num_clients, alpha)))):
                clients[k].append(part)
        parts = [np.sort(np.concatenate(p)) for p in clients]
        if min(len(p) for p in parts) >= floor:
            return parts
    raise ValueError(f"dirichlet_split: no draw with alpha={alpha} gave every one of {num_clients} clients "
                     f"{floor} samples in {DIRICHLET_ATTEMPTS} tries; use a larger alpha or fewer clients")


def pathological_split(labels: np.ndarray, num_clients: int, classes_per_client: int, seed: int) -> list[np.ndarray]:
    """McMahan et al.'s shards: each class cut into single-class shards, each client dealt ``k`` of them.

    With MNIST, 100 clients and k = 2 this is 200 shards of about 300 samples; each client sees at most
    k classes. Shards per class are proportional to the class's size, so every sample is assigned.
    """
    rng = np.random.default_rng(seed)
    classes, sizes = np.unique(labels, return_counts=True)
    total = num_clients * classes_per_client
    shard_counts = np.maximum(1, np.round(sizes / sizes.sum() * total).astype(int))
    while shard_counts.sum() > total:
        shard_counts[np.argmax(shard_counts)] -= 1
    while shard_counts.sum() < total:
        shard_counts[np.argmax(sizes / shard_counts)] += 1
    shards = []
    for c, count in zip(classes, shard_counts):
        shards.extend(np.array_split(rng.permutation(np.flatnonzero(labels == c)), count))
    order = rng.permutation(len(shards))
    return [np.sort(np.concatenate([shards[s] for s in order[k::num_clients]])) for k in range(num_clients)]


def natural_split(users: np.ndarray, num_clients: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """One client per natural user (a seeded subset when fewer clients are asked for); returns the user ids too."""
    ids = np.unique(users)
    if num_clients > len(ids):
        raise ValueError(f"natural_split: {num_clients} clients asked for, but the dataset has only {len(ids)} "
                         "natural users")
    chosen = np.sort(np.random.default_rng(seed).choice(ids, size=num_clients, replace=False))
    return [np.flatnonzero(users == u) for u in chosen], chosen


def _matching_test(train_labels: list[np.ndarray], test_labels: np.ndarray, num_classes: int,
                   seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed + 1)
    counts = np.stack([np.bincount(y, minlength=num_classes) for y in train_labels]).astype(float)
    clients: list[list[np.ndarray]] = [[] for _ in train_labels]
    for c in range(num_classes):
        idx = rng.permutation(np.flatnonzero(test_labels == c))
        if counts[:, c].sum() == 0 or len(idx) == 0:
            continue
        for k, part in enumerate(_cut(idx, counts[:, c])):
            clients[k].append(part)
    return [np.sort(np.concatenate(p)) if p else np.zeros(0, np.int64) for p in clients]


def partition_clients(dataset: FederatedDataset, scheme: str, num_clients: int, *, alpha: float = 0.5,
                      classes_per_client: int = 2, seed: int = 0, client_tests: bool = False) -> ClientPartition:
    """The clients' training and own test samples. ``client_tests``: each client is scored on its own test
    samples (personalized evaluation), so a split that leaves a client without any is refused, naming it."""
    partition = _partition(dataset, scheme, num_clients, alpha, classes_per_client, seed)
    empty = [k for k, test in enumerate(partition.test) if len(test) == 0]
    if client_tests and empty:
        shown = ", ".join(f"client {k} ({len(partition.train[k])} training samples)" for k in empty[:5])
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        raise ValueError(f"partition_clients: {shown}{more} of the {scheme} split of {dataset.name} into "
                         f"{num_clients} clients {'has' if len(empty) == 1 else 'have'} no test samples of its own, "
                         "so its personalized accuracy is undefined; use fewer clients, a larger data.alpha, or "
                         "another seed")
    return partition


def _partition(dataset: FederatedDataset, scheme: str, num_clients: int, alpha: float, classes_per_client: int,
               seed: int) -> ClientPartition:
    labels = dataset.y_train.numpy()
    if scheme == "natural":
        if dataset.train_users is None:
            raise ValueError(f"partition_clients: {dataset.name} has no natural users")
        train, chosen = natural_split(dataset.train_users, num_clients, seed)
        return ClientPartition(train, [np.flatnonzero(dataset.test_users == u) for u in chosen])
    if scheme == "iid":
        train = iid_split(len(labels), num_clients, seed)
    elif scheme == "dirichlet":
        train = dirichlet_split(labels, num_clients, alpha, seed)
    elif scheme == "pathological":
        train = pathological_split(labels, num_clients, classes_per_client, seed)
    else:
        raise ValueError(f"partition_clients: unknown scheme {scheme!r} (choose from {', '.join(SCHEMES)})")
    test = _matching_test([labels[t] for t in train], dataset.y_test.numpy(), dataset.num_classes, seed)
    return ClientPartition(train, test)


def subsample(parts: list[np.ndarray], fraction: float, seed: int) -> list[np.ndarray]:
    """Keep a random ``fraction`` of each client's samples: round(fraction × n), at least one sample.

    Deterministic for a seed; a client keeps a subset of its own samples, so its label mix stays about
    the same while its amount of data shrinks. ``fraction`` 1 returns the parts unchanged.
    """
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"subsample: fraction must be in (0, 1], got {fraction}")
    if fraction == 1.0:
        return list(parts)
    rng = np.random.default_rng([seed, SUBSAMPLE_STREAM])
    kept = []
    for part in parts:
        count = min(len(part), max(1, round(fraction * len(part))))
        kept.append(np.sort(rng.choice(part, size=count, replace=False)))
    return kept


def hold_out(parts: list[np.ndarray], fraction: float, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Split each client's samples into (training, validation): round(fraction × n) of them, seeded, are held out,
    and every client keeps at least one training sample. ``fraction`` 0 holds out nothing."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"hold_out: fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return list(parts), [np.zeros(0, np.int64) for _ in parts]
    rng = np.random.default_rng([seed, HOLD_OUT_STREAM])
    kept, held = [], []
    for part in parts:
        count = min(len(part) - 1, round(fraction * len(part))) if len(part) else 0
        chosen = np.zeros(len(part), bool)
        chosen[rng.choice(len(part), size=count, replace=False)] = True
        kept.append(part[~chosen])
        held.append(part[chosen])
    return kept, held
