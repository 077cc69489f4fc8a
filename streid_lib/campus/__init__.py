"""Campus: the embedded synthetic camera network, the default dataset of every notebook (docs/reference.md §13.5).

Network and walkers: :mod:`.simulate`; crops: :mod:`.render`; ground truth: :mod:`.truth`; options: :mod:`.config`.
Layout of a campus root (``generate_campus(out, ...)``)::

    bounding_box_train/  bounding_box_test/  query/    *.jpg (absent with images=False)
    train.txt  gallery.txt  query.txt                  image names, one per line (read_name_lists)
    manifest.csv                                       path,pid,camera,frame (all splits; global frames)
    manifest_train.csv  manifest_gallery.csv  manifest_query.csv
    sequence_lengths.json                              {"<cam>": [len_s1, len_s2, ...]} frames (Market naming)
    transit_truth.npz                                  ground-truth transit counts (see .truth)
    campus.json                                        config, network, counts, HP layout, provenance
"""

from __future__ import annotations

from .config import PRESETS, CampusConfig, campus_preset
from .dataset import (
    INFO_FILE,
    MANIFEST_FILE,
    CampusInfo,
    compute_truth,
    generate_campus,
    recommended_st_params,
    sample_train_metadata,
)
from .simulate import CampusError, CampusNetwork, build_network, simulate_walkers
from .truth import TRUTH_FILE, TransitTruth, hp_distance, load_truth, mean_hp_distance

__all__ = [
    "INFO_FILE",
    "MANIFEST_FILE",
    "PRESETS",
    "TRUTH_FILE",
    "CampusConfig",
    "CampusError",
    "CampusInfo",
    "CampusNetwork",
    "TransitTruth",
    "build_network",
    "compute_truth",
    "generate_campus",
    "hp_distance",
    "load_truth",
    "mean_hp_distance",
    "recommended_st_params",
    "campus_preset",
    "sample_train_metadata",
    "simulate_walkers",
]
