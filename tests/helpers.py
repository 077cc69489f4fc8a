"""Plain helpers shared by the tests (importable as ``helpers``: pytest's ``pythonpath`` holds ``tests/``).

Small random feature sets, and the command line run in-process as a user sees it (exit code, stdout, stderr).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from unittest import mock

import numpy as np

from streid_lib.features import FeatureSet
from streid_lib.metadata import Metadata


def random_metadata(
    n: int, rng: np.random.Generator, n_ids: int = 10, n_cams: int = 6, max_frame: int = 50_000
) -> Metadata:
    """n images with random pids (1..n_ids), 1-based cameras and frames."""
    return Metadata(
        rng.integers(1, n_ids + 1, n),
        rng.integers(1, n_cams + 1, n),
        rng.integers(0, max_frame, n),
    )


def random_feature_set(
    nq: int = 20,
    ng: int = 60,
    dim: int = 16,
    n_ids: int = 10,
    n_cams: int = 6,
    max_frame: int = 50_000,
    seed: int = 0,
) -> FeatureSet:
    """A small random FeatureSet: features correlated with identity, so VIS beats chance."""
    rng = np.random.default_rng(seed)
    query = random_metadata(nq, rng, n_ids, n_cams, max_frame)
    gallery = random_metadata(ng, rng, n_ids, n_cams, max_frame)
    centres = rng.standard_normal((n_ids + 1, dim))
    qf = centres[query.pids] + 0.8 * rng.standard_normal((nq, dim))
    gf = centres[gallery.pids] + 0.8 * rng.standard_normal((ng, dim))
    return FeatureSet(qf.astype(np.float32), gf.astype(np.float32), query, gallery, {"source": f"random seed={seed}"})


# ---------------------------------------------------------------------------------------------------------------
# The command line in-process: what a user sees (exit code, stdout, stderr)


def run(capsys, *argv: str) -> tuple[int, str, str]:
    """``python -m streid_lib ARGV`` in this process: ``(exit code, stdout, stderr)``."""
    from streid_lib.cli import main

    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_error(result: tuple[int, str, str], *words: str) -> str:
    """Exit 2, one line ``error: ...`` on stderr holding every word, nothing on stdout, no traceback."""
    rc, out, err = result
    lines = err.strip().splitlines()
    assert rc == 2, (rc, out, err)
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for w in words:
        assert w in lines[0], f"{w!r} not in {lines[0]!r}"
    assert out == ""
    return lines[0]


# ---------------------------------------------------------------------------------------------------------------
# A training run stopped as a killed process would be


class SimulatedKill(RuntimeError):
    """Raised at the start of an epoch by :func:`kill_at_epoch`."""


@contextlib.contextmanager
def kill_at_epoch(epoch: int | None) -> Iterator[None]:
    """Stop ``train_model`` when epoch ``epoch`` (0-based) starts, after the checkpoints of the epochs before it.

    It wraps the learning-rate step that opens every epoch (``visual.train._set_lr``); ``None`` changes nothing.
    """
    if epoch is None:
        yield
        return
    from streid_lib.visual import train

    real = train._set_lr

    def set_lr(optimizer, e, *args, **kwargs):
        if e >= epoch:
            raise SimulatedKill(f"simulated kill at the start of epoch {e + 1}")
        return real(optimizer, e, *args, **kwargs)

    with mock.patch.object(train, "_set_lr", set_lr):
        yield
