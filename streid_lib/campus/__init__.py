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

from .config import campus_preset
from .dataset import INFO_FILE, generate_campus
from .simulate import CampusError
from .truth import TransitTruth, hp_distance, load_truth, mean_hp_distance

__all__ = [
    "INFO_FILE",
    "CampusError",
    "TransitTruth",
    "campus_preset",
    "generate_campus",
    "hp_distance",
    "load_truth",
    "mean_hp_distance",
]
