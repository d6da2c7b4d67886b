"""``python -m models.report``: parameters and bytes per transfer of every model, as a markdown table.

    python -m models.report [--gamma 0.1 0.5 0.9] [--arch vgg16 lstm] [--parameterization fedpara]

One row per architecture × parameterization × γ, each architecture sized for the dataset its record
names (``Architecture.reported_on``): the inner ranks its factorized layers got (min..max), its
parameter count, the ratio to the original model, and the megabytes (10⁶ bytes, 32-bit floats) of one
transfer of its global part (pFedPara's W2 factors stay on the client). Models are built on the meta
device: shapes only, no weights allocated.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from models.factorized import FactorizedLayer
from models.factory import build_model
from models.parameterization import PARAMETERIZATIONS
from models.registry import ARCHITECTURES
from models.transfer import count_parameters, float_bytes, local_parameter_names, original_parameter_count
from partitions import DATASETS

BYTES_PER_MB = 1_000_000
HEADER = ("arch", "data", "parameterization", "gamma", "inner ranks", "parameters", "ratio to original",
          "MB per transfer")


def report_rows(archs: Iterable[str], parameterizations: Iterable[str],
                gammas: Sequence[float]) -> list[tuple[str, ...]]:
    """The table's rows, as strings."""
    rows: list[tuple[str, ...]] = []
    for arch in archs:
        dataset = DATASETS[ARCHITECTURES[arch].reported_on]  # the classes and input shape it is sized for
        num_classes, input_shape = dataset.num_classes, dataset.input_shape
        original = original_parameter_count(arch, num_classes, input_shape)
        for parameterization in parameterizations:
            for gamma in ([None] if parameterization == "original" else gammas):
                with torch.device("meta"):
                    model = build_model(arch, parameterization, num_classes=num_classes,
                                        input_shape=input_shape, gamma=gamma)
                params = count_parameters(model)
                state = model.state_dict()
                sent = [t.numel() for n, t in state.items() if n not in local_parameter_names(model)]
                rows.append((arch, dataset.name, parameterization, "-" if gamma is None else f"{gamma:g}",
                             _rank_range(model), f"{params:,}", f"{params / original:.3f}",
                             f"{float_bytes(sent) / BYTES_PER_MB:.2f}"))
    return rows


def markdown_table(rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _rank_range(model: nn.Module) -> str:
    ranks = [module.rank for module in model.modules() if isinstance(module, FactorizedLayer)]
    return f"{min(ranks)}..{max(ranks)}" if ranks else "-"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.report", description=__doc__.splitlines()[0])
    parser.add_argument("--gamma", type=float, nargs="+", default=[0.1, 0.5, 0.9])
    parser.add_argument("--arch", nargs="+", choices=list(ARCHITECTURES), default=list(ARCHITECTURES))
    parser.add_argument("--parameterization", nargs="+", choices=PARAMETERIZATIONS, default=list(PARAMETERIZATIONS))
    args = parser.parse_args(argv)
    print(markdown_table(report_rows(args.arch, args.parameterization, args.gamma)))


if __name__ == "__main__":
    main()
