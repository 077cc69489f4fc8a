"""The study's glue for the notebooks: configuration, steps, tables, claims and outputs (docs/architecture.md).

The notebooks stay thin: a parameters cell, :func:`setup`, then calls into this package; everything they write goes
through :func:`write_table` or :func:`save_figure`, which put a provenance record beside the output.
"""

from __future__ import annotations

from ..visual.config import use_portable_cpu
from . import label_free as label_free  # notebook 08 (issue #19)
from .claims import check_claims as check_claims
from .config import PROFILE_SETTINGS as PROFILE_SETTINGS
from .config import REPO_ROOT as REPO_ROOT
from .config import StudyConfig as StudyConfig
from .config import StudyConfigError as StudyConfigError
from .config import dataset_root as dataset_root
from .config import study_config as study_config
from .interpret import describe_differences as describe_differences
from .interpret import describe_sensitivity as describe_sensitivity
from .interpret import describe_splits as describe_splits
from .interpret import describe_st_fit as describe_st_fit
from .interpret import describe_sweep as describe_sweep
from .interpret import describe_visual as describe_visual
from .interpret import features_used as features_used
from .interpret import not_computed as not_computed
from .outputs import formatted as formatted
from .outputs import relative_paths as relative_paths
from .outputs import save_figure as save_figure
from .outputs import say as say
from .outputs import show as show
from .outputs import show_claims as show_claims
from .outputs import write_table as write_table
from .paper import PAPER_GAMMA_RANGE as PAPER_GAMMA_RANGE
from .paper import PAPER_LAMBDA_RANGE as PAPER_LAMBDA_RANGE
from .paper import PAPER_TABLE1 as PAPER_TABLE1
from .paper import PAPER_TABLE2 as PAPER_TABLE2
from .paper import PAPER_TABLE3 as PAPER_TABLE3
from .steps import MissingInput as MissingInput
from .steps import NotComputed as NotComputed
from .steps import beyond_features as beyond_features
from .steps import campus_truth as campus_truth
from .steps import evaluate_rows as evaluate_rows
from .steps import example_entries as example_entries
from .steps import features_summary as features_summary
from .steps import fit_st_model as fit_st_model
from .steps import load_splits as load_splits
from .steps import main_features as main_features
from .steps import model_rows as model_rows
from .steps import per_camera_counts as per_camera_counts
from .steps import ranked_examples as ranked_examples
from .steps import ranked_text as ranked_text
from .steps import st_sensitivity as st_sensitivity
from .steps import sweep_metric as sweep_metric
from .steps import training_metadata as training_metadata
from .steps import visual_features as visual_features
from .tables import not_computed_note as not_computed_note
from .tables import results_frame as results_frame
from .tables import side_by_side as side_by_side
from .tables import table_3 as table_3
from .tables import table_3_rows as table_3_rows
from .tables import tables_1_2 as tables_1_2
from .tables import tables_1_2_rows as tables_1_2_rows
from .untrained import beside_untrained as beside_untrained
from .untrained import describe_gain as describe_gain
from .untrained import show_training_gain as show_training_gain
from .untrained import training_gain as training_gain
from .untrained import untrained_rows as untrained_rows


def setup(
    profile: str | None = None,
    dataset: str = "campus",
    data_root: str | None = None,
    features: str | None = None,
    train_names: str | None = None,
    device: str = "auto",
    epochs: int | None = None,
    out_dir: str | None = None,
    seed: int = 0,
) -> StudyConfig:
    """The run's checked configuration (:func:`~streid_lib.study.config.study_config`), shown as one line."""
    cfg = study_config(
        profile=profile, dataset=dataset, data_root=data_root, features=features, train_names=train_names,
        device=device, epochs=epochs, out_dir=out_dir, seed=seed,
    )  # fmt: skip
    if cfg.cpu_threads and cfg.route.trains:  # the same trained networks on any x86-64 CPU (§13.13)
        use_portable_cpu(cfg.cpu_threads)
    source = f" · features `{features}`" if features else (f" · images `{data_root}`" if data_root else "")
    say(
        f"**Run:** {cfg.run_label} · profile `{cfg.profile}` · route {cfg.route.name}{source} · seed {cfg.seed} · "
        f"tables and figures in `{cfg.figures_dir}`",
        cfg=cfg,
    )
    return cfg
