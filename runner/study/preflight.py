"""What a sweep checks before Ray starts: that every dataset its trials read is on disk, and what a ``--resume``
changes from the run it resumes (runner/study/sweep_record.py refuses a change to the trials themselves)."""

from __future__ import annotations

from runner.config import TrialConfig
from runner.study.sweep_record import SweepRecord, check_resume, read_record


def data_problems(trials: list[TrialConfig]) -> list[tuple[str, str, FileNotFoundError | None]]:
    """(dataset, root, what is missing or None) for each distinct dataset the trials read."""
    from runner.study.trial import check_dataset

    problems: list[tuple[str, str, FileNotFoundError | None]] = []
    for data in sorted({t.data for t in trials}, key=lambda d: (d.dataset, d.root, d.download)):
        key = (data.dataset, data.root)
        if any(p[:2] == key for p in problems):
            continue
        try:
            check_dataset(data)
            problems.append((*key, None))
        except FileNotFoundError as error:
            problems.append((*key, error))
    return problems


def check_data(trials: list[TrialConfig]) -> None:
    """Fail before Ray starts when a dataset is missing (the error says how to get it)."""
    for _, _, error in data_problems(trials):
        if error is not None:
            raise error


def resume_changes(record: SweepRecord, results_dir: str) -> list[str]:
    """What this ``--resume`` changes from the run it resumes, one line each (honored); a change to the trials
    themselves raises :class:`~runner.study.sweep_file.SweepError` naming the override or field, before
    anything is written."""
    started = read_record(results_dir)
    if started is None:
        return []  # a run from before sweep.json, or none yet: Tune decides what there is to resume
    return check_resume(started, record)
