"""Camera-network maps (docs/reference.md §14.4): edges, shares, modal transit times, comparison with a truth."""

from __future__ import annotations

import numpy as np
import pytest

from streid_lib.camera_map import CameraMapError, compare_maps, edges_from_arrays, model_edges
from streid_lib.metadata import Metadata
from streid_lib.st_model import SpatialTemporalModel


def test_edges_by_hand():
    votes = np.zeros((3, 3))
    votes[1, 0], votes[0, 1], votes[2, 1], votes[2, 0] = 6, 2, 1, 0.01
    density = np.zeros((3, 3, 10))
    density[1, 0, 4] = density[2, 1, 7] = 1.0  # the later camera first (§3.3)
    e = edges_from_arrays(votes, density, bin_width=100, fps=50, min_share=0.05)
    assert e[["cam_a", "cam_b"]].values.tolist() == [[1, 2], [2, 3]]  # the 0.01-vote pair falls under min_share
    assert e["share"].tolist() == pytest.approx([8 / 9.01, 1 / 9.01])
    assert e["transit_s"].tolist() == pytest.approx([4.5 * 100 / 50, 7.5 * 100 / 50])
    assert e["later"].tolist() == [2, 3]
    with pytest.raises(CameraMapError):
        edges_from_arrays(votes, density, bin_width=100, fps=0)


def test_model_edges_find_the_walked_pair():
    # 40 identities walk camera 1 → camera 3, 600 frames later; nobody is seen by camera 2 and another camera
    n = 40
    pids = np.repeat(np.arange(1, n + 1), 2)
    cams = np.tile([1, 3], n)
    frames = np.repeat(np.arange(n) * 5000, 2) + np.tile([0, 600], n)
    model = SpatialTemporalModel(n_bins=100, n_cams=3).fit(Metadata(pids, cams, frames))
    e = model_edges(model, fps=60)
    assert e[["cam_a", "cam_b", "later"]].values.tolist() == [[1, 3, 3]]
    assert abs(e["transit_s"].iloc[0] - 10.0) <= 100 / 60  # within one 100-frame bin of 600 frames at 60 fps


def test_compare_maps():
    est = edges_from_arrays(np.array([[0, 5, 5], [0, 0, 0], [0, 0, 0]]), np.ones((3, 3, 4)), 100, 100, 0.01)
    true = est.iloc[[0]].assign(transit_s=2.5)
    c = compare_maps(est, true)
    assert (c["precision"], c["recall"]) == (0.5, 1.0)
    assert c["mean_abs_transit_error_s"] == pytest.approx(2.0)
    assert c["table"]["in_true"].tolist() == [True, False]


def test_camera_maps_keep_the_overall_title():
    from streid_lib import plots

    e = edges_from_arrays(np.array([[0, 5, 5], [0, 0, 0], [0, 0, 0]]), np.ones((3, 3, 4)), 100, 100, 0.01)
    fig = plots.camera_maps([e, e], ["truth", "model"], 3, title="Camera network")
    assert fig._suptitle.get_text() == "Camera network"
    assert [ax.get_title() for ax in fig.axes] == ["truth", "model"]
