"""``ARCHITECTURES``: every architecture's record, by name (each record is declared in its own module).

The config check, ``build_model``, the budget solver and ``python -m models.report`` read this mapping and
nothing else, so adding an architecture is its module (the model and its ``ARCHITECTURE`` record), its line
here, and its test.
"""

from __future__ import annotations

from models import cnn, fc2, lstm, resnet, vgg
from models.architecture import Architecture

ARCHITECTURES: dict[str, Architecture] = {
    module.ARCHITECTURE.name: module.ARCHITECTURE for module in (vgg, resnet, lstm, fc2, cnn)
}
