"""Evaluation from the base install: ``pip install .`` (numpy, scipy, pandas, scikit-learn; no torch).

Run by ``make base-install`` with the python of a fresh virtual environment that holds the base package alone. It
checks that torch is absent there, then runs ``python -m streid_lib evaluate`` (faithful rows, re-ranking and
improved mode) on a small generated features file with a training side, and on the real DukeMTMC-reID development
features when ``../shared`` holds them. Any failure exits non-zero with one line saying what failed.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from streid_lib.features import FeatureSet, save_features
from streid_lib.metadata import Metadata

DEV_FEATURES = Path(__file__).resolve().parents[2] / "shared" / "data" / "features" / "duke_mobilenetv2.npz"


def small_set(seed: int = 0) -> FeatureSet:
    """60 identities walking cameras 1 → 2 → 3 (≈ 300 frames a hop), features near an identity centre."""
    rng = np.random.default_rng(seed)

    def side(pids: np.ndarray) -> Metadata:
        cams = rng.integers(1, 4, len(pids))
        frames = pids * 2_000 + (cams - 1) * 300 + rng.integers(0, 60, len(pids))
        return Metadata(pids.astype(np.int64), cams.astype(np.int64), frames.astype(np.int64))

    centres = rng.standard_normal((200, 32))

    def feats(meta: Metadata) -> np.ndarray:
        return (centres[meta.pids] + 0.9 * rng.standard_normal((len(meta.pids), 32))).astype(np.float32)

    query, gallery = side(np.repeat(np.arange(1, 41), 2)), side(np.repeat(np.arange(1, 41), 5))
    train = side(np.repeat(np.arange(100, 160), 6))
    return FeatureSet(
        feats(query), feats(gallery), query, gallery, {"source": "base_install_check"}, feats(train), train
    )


def evaluate(features: Path, dataset: str, *extra: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        cmd = [sys.executable, "-m", "streid_lib", "evaluate", "--features", str(features), "--dataset", dataset]
        proc = subprocess.run([*cmd, "--json", str(out), *extra], capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(
                f"base install: evaluate {features.name} {' '.join(extra)} exited {proc.returncode}: {proc.stderr}"
            )
        return json.loads(out.read_text())


def main() -> None:
    if importlib.util.find_spec("torch") is not None:
        sys.exit("base install: torch is importable here, so this check proves nothing (use a fresh venv)")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "small.npz"
        save_features(path, small_set())
        result = evaluate(path, "campus", "--rerank", "--mode", "improved")
    rows = result["rows"]
    for row in ("VIS", "st-ReID", "st-ReID+re-rank", "improved"):
        if row not in rows:
            sys.exit(f"base install: row {row} missing from evaluate's JSON (rows: {sorted(rows)})")
    print(f"base install (no torch): small set, {len(rows)} rows, st-ReID R1 {rows['st-ReID']['R1']:.1f}")
    if DEV_FEATURES.is_file():
        rows = evaluate(DEV_FEATURES, "duke", "--rows", "VIS", "st-ReID")["rows"]
        print(f"base install (no torch): {DEV_FEATURES.name}, st-ReID R1 {rows['st-ReID']['R1']:.1f}")
    else:
        print(f"base install: {DEV_FEATURES} not found (../shared is absent): real-data evaluate skipped")


if __name__ == "__main__":
    main()
