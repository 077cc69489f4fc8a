"""Campus: the embedded synthetic camera network, the default dataset of every notebook and of the main job.

Real re-ID datasets cannot be downloaded here, so this package simulates one whose
spatial-temporal structure is known exactly:

* **Network** (:mod:`.simulate`): K cameras (default 6) on a walking graph. Cameras 1-2, 3-4 and
  5-6 are joined by two routes each (multi-modal transit); camera 6 hangs off 5 only and routes
  visit at most 4 cameras, so far pairs (1-6, 3-6) are co-observed only by the rare 4-camera routes
  (about 20x fewer identities than neighbours). People walk both ways.
* **People**: heavy-tailed walking speeds (log-speed × Student t, 3 d.o.f.), occasional pauses,
  uniform start over the recording, routes through 2-4 cameras, detection misses; single-camera
  people become distractors.
* **Recording**: 60 fps on one shared clock. Every camera records several sequences (Market's
  ``cXsY``); the frame in a name is local to its sequence and ``sequence_lengths.json`` gives the
  offsets, so the global frame is ``offset(camera, sequence) + local frame``. 1-8 crops per pass.
* **Appearance** (:mod:`.render`): procedurally rendered 128×64 crops from a small palette; people
  dress from a catalogue of ``n_outfits`` clothing combinations, so genuine lookalikes exist (the
  ambiguity the ST stream resolves); per-camera colour cast, brightness, gamma, resolution loss and
  blur, per-crop background, pose/scale jitter, front/back/side views, bags and partial occlusion.

Layout of a campus root (``generate_campus(out, ...)``)::

    bounding_box_train/  bounding_box_test/  query/    *.jpg (absent with images=False)
    train.txt  gallery.txt  query.txt                  image names, one per line (read_name_lists)
    manifest.csv                                       path,pid,camera,frame (all splits; global frames)
    manifest_train.csv  manifest_gallery.csv  manifest_query.csv
    sequence_lengths.json                              {"<cam>": [len_s1, len_s2, ...]} frames (Market naming)
    transit_truth.npz                                  ground-truth transit counts (see .truth)
    campus.json                                        config, network, counts, HP layout, provenance

Names: Market ``PPPP_cXsY_FFFFFF_BB.jpg`` (default) or Duke ``PPPP_cC_fFFFFFFF.jpg`` (global frame).
Train and test identities are disjoint; one query per test identity and camera (from a pass of
≥2 crops); the gallery holds the test identities' other crops, single-camera distractors (pid
``0000`` with Market naming, ordinary ids with Duke naming) and junk crops (pid ``-1``).

Ground truth (:mod:`.truth`): ``transit_truth.npz`` holds, per ordered camera pair (a, b), the
Monte-Carlo histogram of *mean crop frame in a − mean crop frame in b* over identities seen by both
with the difference positive (a is the later camera), in 10-frame bins. That is precisely what the
faithful HP estimate (docs/reference.md §3) counts — one vote per identity per camera pair, per-identity mean
frames, later camera first, per-direction normalisation — so :func:`hp_distance` compares like with like.

Recommended HP layout (``CampusInfo.st_params``): the faithful 100-frame bins and σ = 50 bins
(83 s at 60 fps, below a single route's transit spread), with ``n_bins = ceil(recording / 100) + 1``
(≤ 4,801 for every preset, so 5,000 bins also fit).
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
