"""The study's configuration (:class:`StudyConfig`): profiles, the route of a run and where its outputs go.

Profiles: ``smoke`` (tiny campus, one epoch; chosen when ``CI`` is set), ``default`` (small campus, CPU) and
``paper`` (the paper's recipe, GPU). Routes: :class:`Route`; output folders and run names: README.md ("Where the
outputs go"). A row or figure whose input a route lacks is reported as "not computed (needs …)".
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from ..campus import INFO_FILE, generate_campus
from ..campus import campus_preset as campus_config
from ..errors import StreidError
from ..features import load_features
from ..improved.config import SelectionConfig
from ..metadata import read_dataset_root
from ..visual.config import TrainConfig

REPO_ROOT = Path(__file__).resolve().parents[2]
PROFILES = ("smoke", "default", "paper")
DATASETS = ("campus", "market", "duke")
#: The dataset names as the paper writes them.
DATASET_LABELS = {"campus": "the campus (synthetic)", "market": "Market-1501", "duke": "DukeMTMC-reID"}

#: The visual models of the study, keyed as in the tables: (architecture, random-erasing probability).
VISUAL_MODELS: dict[str, tuple[str, float]] = {
    "resnet50": ("resnet50", 0.0),
    "densenet121": ("densenet121", 0.0),
    "pcb": ("pcb", 0.0),
    "pcb_re": ("pcb", 0.5),
}
#: Readable names of the visual streams (``colour``: the training-free colour-histogram descriptor of the campus).
MODEL_LABELS = {
    "resnet50": "ResNet-50",
    "densenet121": "DenseNet-121",
    "pcb": "PCB",
    "pcb_re": "PCB+RE",
    "colour": "colour histogram",
}
FEATURE_SUFFIXES = (".npz", ".mat")
#: The parameters whose values are paths (files or folders). ``reproduce`` makes them absolute before it injects
#: them into the executed notebooks, so that an executed copy reruns from any folder (nbval runs it from its own).
PATH_PARAMETERS = ("data_root", "features", "train_names", "out_dir")


class StudyConfigError(StreidError):
    """A notebook parameter that cannot be used (names the parameter, the value and what was expected)."""


@dataclass(frozen=True)
class Sizes:
    """How much each notebook computes under a profile (the notebooks never size themselves)."""

    #: Notebook 03: Parzen widths σ (bins, at 100-frame bins) and bin widths (frames) swept.
    sigmas: tuple[float, ...] = (0, 5, 10, 25, 50, 100, 200)
    bin_widths: tuple[int, ...] = (20, 50, 100, 200, 400)
    #: Notebook 06: values of λ1 over 0.4-2.8 and of γ over 1-7 (the paper's ranges, Figure 4c/d).
    sweep_points: int = 7
    #: Figure 1: queries shown and the length of each ranked list.
    ranked_queries: int = 3
    ranked_top: int = 8
    #: Notebook 07: paired bootstrap resamples over queries, and the improved mode's search on training identities.
    bootstrap_samples: int = 2000
    selection: SelectionConfig = SelectionConfig()


@dataclass(frozen=True)
class Profile:
    """A named profile: the campus preset, the training recipe (a template for every model) and the sizes."""

    campus_preset: str
    train: TrainConfig
    sizes: Sizes
    #: Threads of the portable CPU kernels that make training bit-identical on any x86-64 CPU
    #: (:func:`streid_lib.visual.config.use_portable_cpu`, docs/reference.md §13.13); None: the machine's own kernels.
    cpu_threads: int | None = None


PROFILE_SETTINGS: dict[str, Profile] = {
    "smoke": Profile(
        campus_preset="tiny",
        # From scratch on the campus the reference learning rates (0.1 / 0.01) diverge: 0.01 for both.
        train=TrainConfig(epochs=1, height=64, width=32, batch_size=16, weights="none", lr=0.01, lr_backbone=0.01),
        # Notebook 07: a coarser search that keeps every stage and every counting rule (the same rows), and 200
        # bootstrap resamples (their Monte Carlo error is about a tenth of an interval's width).
        # No portable kernels (cpu_threads unset): they would double the training time of make test (§13.13).
        sizes=Sizes(
            sigmas=(10, 50),
            bin_widths=(100,),
            sweep_points=3,
            bootstrap_samples=200,
            selection=SelectionConfig(
                sigmas=(3.0, 12.0, 50.0), sigma0=12.0, w_scales=(1.0, 2.0, 4.0), rerank_b=(1.0, 4.0)
            ),
        ),
    ),
    "default": Profile(
        campus_preset="small",
        # Training and extraction take about 11 minutes on 2 CPU cores with the portable kernels. PCB at 64×32 has a
        # 4×2 layer4 map, so its six adaptive-pooling stripes overlap (the paper's 384×192 gives 24 rows, 4 per stripe).
        train=TrainConfig(epochs=2, height=64, width=32, batch_size=32, weights="none", lr=0.01, lr_backbone=0.01),
        cpu_threads=2,
        sizes=Sizes(),
    ),
    "paper": Profile(
        campus_preset="large",
        train=TrainConfig(epochs=60, batch_size=32),  # the models' reference input sizes
        sizes=Sizes(),
    ),
}


@dataclass(frozen=True)
class Route:
    """Which inputs a run has, resolved once by :func:`study_config`: the steps consult it, not the parameters.

    ``name``: ``campus`` (the synthetic campus: images, ground truth, the colour-histogram stream), ``dataset
    folder`` (Market-1501 / DukeMTMC-reID images), ``features file`` (one file, standing for PCB) or ``features
    folder`` (files named after the visual models, any subset). Models are trained only without features.
    """

    name: str
    campus: bool
    trains: bool
    has_images: bool
    #: The visual streams a run reports, those it can produce, and those extracted with their training side.
    streams: tuple[str, ...]
    available: frozenset[str]
    train_side: tuple[str, ...]

    @property
    def main(self) -> str | None:
        """The visual stream of Figure 4 and of the ST sweeps: PCB as in the paper, else the first one given."""
        return next((k for k in ("pcb", "pcb_re", "resnet50", "densenet121") if k in self.available), None)

    @property
    def beyond(self) -> str:
        """The stream of notebooks 07-08: the colour histograms on the campus (the CPU CNNs are weak), else main."""
        return "colour" if self.campus and self.trains else self.main or "pcb"


def _route(dataset: str, data_root: str | None, features: str | None, feature_files: dict[str, str]) -> Route:
    campus = dataset == "campus"
    if features:
        name = "features folder" if Path(features).is_dir() else "features file"
    else:
        name = "campus" if campus else "dataset folder"
    models = set(feature_files) if features else set(VISUAL_MODELS)
    return Route(
        name=name,
        campus=campus,
        trains=not features,
        has_images=campus or data_root is not None,
        streams=("colour",) * campus + tuple(VISUAL_MODELS),
        available=frozenset(models | ({"colour"} if campus else set())),
        train_side=() if campus else ("pcb",),
    )


@dataclass(frozen=True)
class StudyConfig:
    """Resolved notebook parameters: every choice a run makes, recorded in its provenance (:func:`study_config`)."""

    profile: str
    dataset: str  # campus | market | duke
    data_root: str | None
    train_names: str | None
    device: str
    out_dir: str
    figures_dir: str
    seed: int
    campus_preset: str
    train: TrainConfig
    sizes: Sizes
    route: Route
    cpu_threads: int | None
    #: Visual model key → features file given for it (one file stands for PCB; empty without features).
    feature_files: dict[str, str] = field(default_factory=dict)

    @property
    def out(self) -> Path:
        """The run directory."""
        return Path(self.out_dir)

    @property
    def dataset_label(self) -> str:
        """The dataset as the paper names it (the campus: "the campus (synthetic)")."""
        return DATASET_LABELS[self.dataset]

    @property
    def run_label(self) -> str:
        """What ran, for every title and verdict: the dataset, the visual features and the number of queries, e.g.
        "DukeMTMC-reID · MobileNetV2 ImageNet bottleneck (standing for PCB) · 2,228 queries"."""
        if not self.route.trains:
            what = ", ".join(self.model_label(k) for k in self.feature_files)
        else:
            t = self.train
            init = "from scratch" if t.weights == "none" else f"from {t.weights} weights"
            h, w = replace(t, model="resnet50").input_size  # the size of the models other than PCB
            what = f"CNNs trained in this run ({t.epochs} epoch{'s' * (t.epochs != 1)} {init}, {h}×{w})"
        n = _n_queries(self)
        return f"{self.dataset_label} · {what}" + (f" · {n:,} queries" if n is not None else "")

    def model_label(self, model_key: str) -> str:
        """The name of one visual model's features in this run: "PCB" only for PCB features (trained in this run,
        or a given file made by a PCB); a given file of other features says what it is and what it stands for."""
        label = MODEL_LABELS.get(model_key, model_key)
        if model_key not in self.feature_files:
            return label
        made_by = _given_features_model(self.feature_files[model_key])
        if made_by == VISUAL_MODELS[model_key][0]:
            return label
        return f"{made_by} (standing for {label})"

    @property
    def root(self) -> Path | None:
        """The dataset folder as given, the campus' own folder when none is, or None (features files alone)."""
        if self.data_root:
            return Path(self.data_root)
        return REPO_ROOT / "data" / f"campus-{self.campus_preset}-seed{self.seed}" if self.route.campus else None

    def features_path(self, model_key: str) -> Path:
        """Where the features of one visual model are cached in this run (``.npz``)."""
        return self.out / "features" / f"{model_key}.npz"


def study_config(
    *,
    profile: str | None = None,
    dataset: str = "campus",
    data_root: str | None = None,
    features: str | None = None,
    train_names: str | None = None,
    device: str = "auto",
    epochs: int | None = None,
    out_dir: str | None = None,
    seed: int = 0,
    campus_preset: str | None = None,
) -> StudyConfig:
    """Turn the notebook parameters (keywords only) into a checked :class:`StudyConfig`, or raise
    :class:`StudyConfigError` naming the parameter. ``profile=None``: ``smoke`` when ``CI`` is set, else ``default``.
    """
    if profile in (None, ""):
        profile = "smoke" if "CI" in os.environ else "default"
    if profile not in PROFILES:
        raise StudyConfigError(f"profile: expected one of {PROFILES}, got {profile!r}")
    if dataset not in DATASETS:
        raise StudyConfigError(f"dataset: expected one of {DATASETS}, got {dataset!r}")
    if dataset != "campus" and data_root is None and features is None:
        raise StudyConfigError(
            f"dataset={dataset!r} needs data_root (a dataset folder) or features (a features file or folder)"
        )
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise StudyConfigError(f"seed: expected a non-negative integer, got {seed!r}")
    if dataset != "campus" and data_root is not None and not Path(data_root).is_dir():
        raise StudyConfigError(f"data_root: {data_root} is not a folder")
    if train_names is not None and not Path(train_names).is_file():
        raise StudyConfigError(f"train_names: {train_names} is not a file (expected training image names, one a line)")
    feature_files = _feature_files(features) if features else {}
    prof = PROFILE_SETTINGS[profile]
    train = prof.train
    if epochs is not None:
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise StudyConfigError(f"epochs: expected a positive integer or None, got {epochs!r}")
        train = replace(train, epochs=epochs)
    preset = campus_preset or prof.campus_preset
    name = run_name(dataset, preset, data_root, features, seed, profile)
    default_out = REPO_ROOT / "runs" / (f"{profile}-{name}" if name else profile)
    out = Path(out_dir) if out_dir else default_out
    if profile == "smoke" or out.resolve() != default_out.resolve():
        figs = out / "figures"
    elif name:
        figs = REPO_ROOT / "figures" / name
    else:  # the campus of the profile: the README's figures for the default profile, a folder of its own otherwise
        figs = REPO_ROOT / "figures" if profile == "default" else REPO_ROOT / "figures" / f"campus-{preset}"
    return StudyConfig(
        profile=profile,
        dataset=dataset,
        data_root=None if data_root is None else str(data_root),
        train_names=None if train_names is None else str(train_names),
        device=str(device),
        out_dir=str(out),
        figures_dir=str(figs),
        seed=seed,
        campus_preset=preset,
        train=train,
        sizes=prof.sizes,
        cpu_threads=prof.cpu_threads,
        route=_route(dataset, data_root, features, feature_files),
        feature_files=feature_files,
    )


def run_name(dataset: str, preset: str, data_root: str | None, features: str | None, seed: int, profile: str) -> str:
    """The name of a run's output folders; empty for the campus with the profile's own preset and seed 0."""
    if features:
        path = Path(features)
        name = f"{dataset}-{path.stem if path.suffix in FEATURE_SUFFIXES else path.name}"
    elif data_root:
        name = f"{dataset}-{Path(data_root).name}"
    elif preset != PROFILE_SETTINGS[profile].campus_preset or seed:
        name = f"campus-{preset}"
    else:
        return ""
    return f"{name}-seed{seed}" if seed else name


def _feature_files(features: str) -> dict[str, str]:
    """The features file(s) given: ``{"pcb": file}`` for one file, one entry per recognised file for a folder."""
    path = Path(features)
    if path.is_file():
        if path.suffix not in FEATURE_SUFFIXES:
            raise StudyConfigError(f"features: {path} is not a features file (expected .npz or .mat)")
        return {"pcb": str(path)}
    if not path.is_dir():
        raise StudyConfigError(f"features: {path} not found (expected a features file or a folder of them)")
    files = [p for p in sorted(path.iterdir()) if p.suffix in FEATURE_SUFFIXES and not p.name.startswith(".")]
    unknown = [p.name for p in files if p.stem not in VISUAL_MODELS]
    found: dict[str, str] = {}
    for p in (p for p in files if p.stem in VISUAL_MODELS):
        if p.stem in found:
            raise StudyConfigError(
                f"features: {path} holds two files for {p.stem!r}: {Path(found[p.stem]).name}, {p.name}"
            )
        found[p.stem] = str(p)
    expected = ", ".join(f"{k}.npz" for k in VISUAL_MODELS)
    if unknown:
        raise StudyConfigError(
            f"features: {path} holds features files the study does not know: {unknown}; expected names: {expected} "
            "(or .mat)"
        )
    if not found:
        raise StudyConfigError(f"features: {path} holds no features file; expected some of: {expected} (or .mat)")
    return found


def dataset_root(cfg: StudyConfig) -> Path | None:
    """The dataset folder of this run (the campus generated once, seeded, when missing); None for features alone."""
    root = cfg.root
    if cfg.route.campus and not _campus_is_current(root, cfg):
        generate_campus(root, preset=cfg.campus_preset, seed=cfg.seed)
    return root


def _campus_is_current(root: Path, cfg: StudyConfig) -> bool:
    """True when ``root`` holds a finished campus made with today's configuration of its preset and seed."""
    info = root / INFO_FILE
    if not (root / "manifest.csv").is_file() or not info.is_file():
        return False
    if cfg.data_root:  # a campus the user pointed at is used as it is
        return True
    rec = json.loads(info.read_text())
    want = json.loads(json.dumps(asdict(campus_config(cfg.campus_preset)), default=str))
    return rec.get("config") == want and rec.get("seed") == cfg.seed and rec.get("images", True)


@lru_cache(maxsize=16)
def _features_provenance(path: str, mtime: float) -> tuple[dict, int]:
    fs = load_features(path)
    return fs.provenance, len(fs.query)


def _given_features_model(path: str) -> str:
    """The model that made a given features file: the study's architecture key when the file's training
    provenance names one, else the provenance's ``model`` (up to its first parenthesis), else the file name."""
    prov, _ = _features_provenance(path, Path(path).stat().st_mtime)
    trained = (prov.get("training_config") or {}).get("model")
    if trained:
        return str(trained)
    model = str(prov.get("model") or "").split(" (")[0].strip()
    if model in {arch for arch, _ in VISUAL_MODELS.values()}:  # the file names one of the study's architectures
        return model
    return f"{model} features" if model else f"the features of {Path(path).name}"


def _n_queries(cfg: StudyConfig) -> int | None:
    """The number of query images of a run (None when its inputs are not there yet)."""
    try:
        if not cfg.route.trains:
            path = next(iter(cfg.feature_files.values()))
            return _features_provenance(path, Path(path).stat().st_mtime)[1]
        return len(read_dataset_root(dataset_root(cfg)).query)
    except (OSError, StreidError):
        return None
