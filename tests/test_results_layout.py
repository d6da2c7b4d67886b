"""The results location's names have one home (runner/results_layout.py) and the README's table lists exactly
them; a checkpoint and the trial folder the engine writes are where the layout says."""

from __future__ import annotations

import re
from pathlib import Path

from runner import results_layout as layout
from runner.engine.checkpoint import CheckpointFile, trial_dir
from tests.small_trial import small

README = Path(__file__).resolve().parents[1] / "README.md"


def results_table() -> list[str]:
    """The README's results table: the code block after '## Results'."""
    text = README.read_text()
    section = text[text.index("## Results"):]
    block = re.search(r"```\n(.*?)```", section, re.S)
    assert block is not None
    return block.group(1).splitlines()


def test_readme_results_table_lists_exactly_the_layouts_entries() -> None:
    entries = [line.split()[0] for line in results_table() if line and not line.startswith(" ")]
    assert entries == list(layout.ENTRIES)


def test_readme_results_table_names_every_file_inside_the_entries() -> None:
    table = "\n".join(results_table())
    missing = [name for name in layout.INNER_NAMES if name not in table]
    assert missing == []


def test_the_engine_writes_where_the_layout_says(tmp_path: Path) -> None:
    cfg = small(tmp_path)
    folder = trial_dir(cfg)
    assert str(folder) == str(tmp_path / "trials" / cfg.trial_name)
    checkpoints = CheckpointFile(folder)
    checkpoints.save({"round": 3})
    assert [p.name for p in checkpoints.saved()] == [layout.checkpoint_name(3)] == ["checkpoint-000003.pt"]
    assert (folder / (layout.checkpoint_name(3) + layout.CHECKSUM_SUFFIX)).exists()
