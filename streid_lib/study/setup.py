"""The notebooks' setup cell: ``cfg = study.setup(<the parameters cell's names, in its order>)``."""

from __future__ import annotations

from .config import StudyConfig, study_config
from .outputs import say


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
    source = f" · features `{features}`" if features else (f" · images `{data_root}`" if data_root else "")
    say(
        f"**Run:** {cfg.run_label} · profile `{cfg.profile}` · route {cfg.route.name}{source} · seed {cfg.seed} · "
        f"tables and figures in `{cfg.figures_dir}`",
        cfg=cfg,
    )
    return cfg
