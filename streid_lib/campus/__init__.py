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

from .config import PRESETS, CampusConfig, resolve_config
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
    "cli_synth",
    "compute_truth",
    "generate_campus",
    "hp_distance",
    "load_truth",
    "mean_hp_distance",
    "recommended_st_params",
    "resolve_config",
    "sample_train_metadata",
    "simulate_walkers",
]


def cli_synth(args) -> int:
    """``python -m streid_lib synth --out DIR --preset P --seed N [--naming N] [--metadata-only]``."""
    from ..metadata import read_dataset_root, read_name_lists, split_report

    info = generate_campus(
        args.out,
        preset=args.preset,
        seed=args.seed,
        naming=args.naming,
        images=not args.metadata_only,
        progress=True,
    )
    splits = read_dataset_root(info.root) if info.images else read_name_lists(info.root, info.naming)
    print(
        f"campus ({info.preset}, seed {info.seed}, {info.naming} names) written to {info.root} in {info.seconds:.1f} s"
    )
    print(split_report(splits))
    st = info.st_params
    print(f"HP layout: bin_width={st['bin_width']} frames, n_bins={st['n_bins']}, sigma={st['sigma']} bins")
    print(f"ground truth: {info.files['transit_truth']}")
    return 0
