"""GPU benchmark of the user's path: ``train_model`` + ``extract_features`` for each of the three models,
whole epochs at the reference input sizes, as ``python -m streid_lib train`` runs them.

    python benchmarks/bench_train_models.py [--models pcb resnet50 densenet121] [--epochs 3] [--json out.json]

Where ``bench_gpu_train.py`` times steps, this times what a user waits for: whole epochs with their short last
batch (run eagerly), the CUDA-graph capture, the learning-rate re-capture at the decay epoch, checkpoint writes,
then extraction of query + gallery from JPEG files. Synthetic Market-like data (751 identities × 4 JPEG crops of
128×64, seeded); weights from scratch (no ImageNet download on the lent machine: the throughput is the same).
Per model it reports each epoch's images/s (from the run's history), the wall time of ``train_model`` (decoding
once included), and extraction images/s; it fails if a loss is not finite.

``--device cpu --epochs 2 --ids 4 --per-id 3 --size-scale 0.25`` smoke-tests it on a CPU (figures meaningless).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["pcb", "resnet50", "densenet121"])
    p.add_argument("--epochs", type=int, default=3, help="epochs per model (decay at round(39/60·epochs))")
    p.add_argument("--ids", type=int, default=751)
    p.add_argument("--per-id", type=int, default=4)
    p.add_argument("--size-scale", type=float, default=1.0, help="scale of the reference input sizes")
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.device != "cpu" and not torch.cuda.is_available():
        print("bench_train_models: CUDA is not available; run it on a CUDA GPU", file=sys.stderr)
        return 2

    from streid_lib.visual import data as vdata
    from streid_lib.visual.config import TRAIN_SIZE, ExtractConfig, TrainConfig
    from streid_lib.visual.extract import extract_features
    from streid_lib.visual.train import load_checkpoint, train_model

    dev = torch.device(args.device)
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (smoke test only)"
    res: dict = {"gpu": gpu, "torch": str(torch.__version__), "epochs": args.epochs, "models": {}}
    print(f"{gpu} | torch {torch.__version__}", flush=True)
    ok = True
    with tempfile.TemporaryDirectory(prefix="streid_models_") as tmp:
        root = vdata.write_toy_dataset(
            Path(tmp) / "data", n_ids=args.ids, per_id=args.per_id, n_query_ids=max(1, args.ids // 2), seed=0
        )
        for name in args.models:
            h, w = (max(32, round(v * args.size_scale)) for v in TRAIN_SIZE[name])
            t0 = time.perf_counter()
            config = TrainConfig(
                model=name, epochs=args.epochs, weights="none", height=h, width=w, erasing=0.5, checkpoint_every=1
            )
            ckpt = train_model(config, data_root=root, out_dir=Path(tmp) / name, device=dev, progress=False)
            train_s = time.perf_counter() - t0
            ck = load_checkpoint(ckpt)
            hist = ck["history"]
            extract = ExtractConfig(model=name, height=h, width=w, train=False)
            fs = extract_features(extract, checkpoint=ckpt, data_root=root, device=dev, progress=False)
            n_ext = len(fs.query) + len(fs.gallery)
            finite = all(math.isfinite(e["loss"]) for e in hist)
            ok &= finite
            res["models"][name] = {
                "input": [h, w],
                "cuda_graph": ck["config"]["cuda_graph"],
                "precision": ck["config"]["precision"],
                "epoch_images_per_s": [e["images_per_s"] for e in hist],
                "losses": [round(e["loss"], 4) for e in hist],
                "train_model_wall_s": round(train_s, 1),
                "extract_images_per_s": round(n_ext / fs.provenance["seconds"], 1),
            }
            r = res["models"][name]
            print(
                f"{name} {h}x{w}: epochs {r['epoch_images_per_s']} img/s (graph={r['cuda_graph']}, "
                f"{r['precision']}), losses {r['losses']}, train_model {train_s:.1f} s; "
                f"extraction {r['extract_images_per_s']} img/s" + ("" if finite else "  NON-FINITE LOSS"),
                flush=True,
            )
            if args.json:
                Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
