"""Client splits: every sample dealt once, deterministic, skew that follows α, and learnable synthetic data."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from partitions import (
    dirichlet_split,
    hold_out,
    iid_split,
    load_dataset,
    partition_clients,
    pathological_split,
    subsample,
)

LABELS = np.repeat(np.arange(10), 600)  # 6000 samples, 10 balanced classes


def assert_exact_cover(parts: list[np.ndarray], n: int) -> None:
    joined = np.concatenate(parts)
    assert len(joined) == n and np.array_equal(np.sort(joined), np.arange(n))


def label_skew(parts: list[np.ndarray], labels: np.ndarray) -> float:
    """Mean total-variation distance between each client's label mix and the global one."""
    overall = np.bincount(labels, minlength=10) / len(labels)
    return float(np.mean([0.5 * np.abs(np.bincount(labels[p], minlength=10) / len(p) - overall).sum()
                          for p in parts]))


def test_iid_covers_everything_and_is_seeded():
    parts = iid_split(1003, 10, seed=1)
    assert_exact_cover(parts, 1003)
    assert {len(p) for p in parts} <= {100, 101}
    assert all(np.array_equal(a, b) for a, b in zip(parts, iid_split(1003, 10, seed=1)))
    assert not np.array_equal(parts[0], iid_split(1003, 10, seed=2)[0])


def test_dirichlet_covers_everything_and_skew_grows_as_alpha_falls():
    skews = []
    for alpha in (100.0, 1.0, 0.1):
        parts = dirichlet_split(LABELS, 20, alpha, seed=0, min_size=10)
        assert_exact_cover(parts, len(LABELS))
        assert min(len(p) for p in parts) >= 10
        skews.append(label_skew(parts, LABELS))
    assert skews[0] < 0.1 < skews[1] < skews[2], skews
    again = dirichlet_split(LABELS, 20, 0.5, seed=0)
    assert all(np.array_equal(a, b) for a, b in zip(again, dirichlet_split(LABELS, 20, 0.5, seed=0)))


def test_dirichlet_gives_up_with_a_clear_error():
    with pytest.raises(ValueError, match="use a larger alpha or fewer clients"):
        dirichlet_split(np.zeros(40, int), 20, 0.001, seed=0, min_size=1)


def test_pathological_gives_at_most_k_classes_to_each_client():
    labels = np.random.default_rng(0).integers(0, 10, 6000)  # unequal class sizes, like MNIST
    parts = pathological_split(labels, 100, 2, seed=0)
    assert_exact_cover(parts, 6000)
    assert max(len(np.unique(labels[p])) for p in parts) <= 2
    assert np.mean([len(np.unique(labels[p])) for p in parts]) > 1.5
    assert 40 <= min(len(p) for p in parts) and max(len(p) for p in parts) <= 80


def test_natural_split_follows_users_and_personal_test_data():
    ds = load_dataset("synthetic_text", "unused")
    part = partition_clients(ds, "natural", 10, seed=0)
    users = [np.unique(ds.train_users[p]) for p in part.train]
    assert all(len(u) == 1 for u in users) and len({int(u[0]) for u in users}) == 10
    for train, test in zip(part.train, part.test):
        assert len(test) > 0 and set(ds.test_users[test]) == set(ds.train_users[train])
    with pytest.raises(ValueError, match="natural users"):
        partition_clients(ds, "natural", 1000, seed=0)


def test_personal_test_data_is_disjoint_and_matches_the_clients_labels():
    ds = load_dataset("synthetic", "unused")
    part = partition_clients(ds, "pathological", 20, classes_per_client=2, seed=0)
    joined = np.concatenate(part.test)
    assert len(joined) == len(np.unique(joined))
    y_train, y_test = ds.y_train.numpy(), ds.y_test.numpy()
    for train, test in zip(part.train, part.test):
        assert len(test) > 0 and set(y_test[test]) <= set(y_train[train])


def test_synthetic_images_are_learnable_but_not_by_mean_color():
    ds = load_dataset("synthetic", "unused")
    assert ds.x_train.shape == (5000, 3, 32, 32) and ds.x_train.dtype == torch.uint8
    mean, std = torch.tensor(ds.mean).view(1, 3, 1, 1), torch.tensor(ds.std).view(1, 3, 1, 1)
    x_train = (ds.x_train[:3000].float() / 255 - mean) / std
    x_test = (ds.x_test.float() / 255 - mean) / std
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 5, padding=2), torch.nn.ReLU(), torch.nn.MaxPool2d(4),
                                torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool2d(2), torch.nn.Flatten(), torch.nn.Linear(128, 10))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(3):
        for idx in torch.randperm(3000).split(100):
            opt.zero_grad()
            F.cross_entropy(model(x_train[idx]), ds.y_train[idx]).backward()
            opt.step()
    with torch.no_grad():
        accuracy = (model(x_test).argmax(1) == ds.y_test).float().mean().item()
    color = x_train.mean(dim=(2, 3))  # a nearest-centroid classifier on mean color alone
    centroids = torch.stack([color[ds.y_train[:3000] == c].mean(0) for c in range(10)])
    color_accuracy = (torch.cdist(x_test.mean(dim=(2, 3)), centroids).argmin(1) == ds.y_test).float().mean().item()
    print(f"synthetic: small CNN {accuracy:.3f}, mean-color centroid {color_accuracy:.3f}")
    assert accuracy > 0.6 and accuracy > color_accuracy + 0.2


def test_subsample_keeps_a_seeded_fraction_of_each_client_and_at_least_one_sample():
    parts = [*iid_split(1003, 10, seed=0), np.array([7]), np.array([3, 9])]
    kept = subsample(parts, 0.1, seed=4)
    assert [len(k) for k in kept] == [max(1, round(0.1 * len(p))) for p in parts] == [10] * 10 + [1, 1]
    assert all(set(k) <= set(p) and np.array_equal(k, np.unique(k)) for k, p in zip(kept, parts))
    assert all(np.array_equal(a, b) for a, b in zip(kept, subsample(parts, 0.1, seed=4)))
    assert not all(np.array_equal(a, b) for a, b in zip(kept, subsample(parts, 0.1, seed=5)))
    assert all(np.array_equal(a, b) for a, b in zip(subsample(parts, 1.0, seed=4), parts))
    # a subset of a client's own samples: a pathological client keeps its (at most) 2 classes
    patho = pathological_split(LABELS, 30, 2, seed=0)
    assert all(set(LABELS[k]) <= set(LABELS[p]) for k, p in zip(subsample(patho, 0.25, seed=0), patho))
    for bad in (0.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"subsample: fraction must be in \(0, 1\]"):
            subsample(parts, bad, seed=0)


def test_a_split_that_leaves_a_client_without_test_samples_is_refused_for_personal_scores_naming_it():
    from partitions.synthetic import synthetic_images

    ds = synthetic_images(0, train=1000, test=40)  # 40 test samples dealt to 30 clients: some get none
    part = partition_clients(ds, "dirichlet", 30, alpha=0.2, seed=0)  # a global test set needs none of them
    empty = [k for k, test in enumerate(part.test) if len(test) == 0]
    assert empty
    first = empty[0]
    with pytest.raises(ValueError, match=rf"client {first} \({len(part.train[first])} training samples\)"):
        partition_clients(ds, "dirichlet", 30, alpha=0.2, seed=0, client_tests=True)
    whole = partition_clients(load_dataset("synthetic", "unused"), "dirichlet", 30, alpha=0.2, seed=0,
                              client_tests=True)  # the full test set reaches every client
    assert min(len(test) for test in whole.test) > 0


def test_hold_out_sets_aside_a_seeded_fraction_of_each_client_and_keeps_one_to_train():
    parts = [*iid_split(1003, 10, seed=0), np.array([7]), np.array([3, 9]), np.zeros(0, np.int64)]
    kept, held = hold_out(parts, 0.1, seed=4)
    assert [len(h) for h in held] == [10] * 10 + [0, 0, 0]  # round(0.1 n), and a client keeps one sample to train
    assert [len(k) + len(h) for k, h in zip(kept, held)] == [len(p) for p in parts]
    for k, h, p in zip(kept, held, parts):
        assert not set(k) & set(h) and set(k) | set(h) == set(p)
    again, other = hold_out(parts, 0.1, seed=4)[1], hold_out(parts, 0.1, seed=5)[1]
    assert all(np.array_equal(a, b) for a, b in zip(held, again))
    assert not all(np.array_equal(a, b) for a, b in zip(held, other))
    none_kept, none_held = hold_out(parts, 0.0, seed=4)
    assert all(np.array_equal(a, b) for a, b in zip(none_kept, parts)) and not any(len(h) for h in none_held)
    with pytest.raises(ValueError, match=r"hold_out: fraction must be in \[0, 1\)"):
        hold_out(parts, 1.0, seed=0)
