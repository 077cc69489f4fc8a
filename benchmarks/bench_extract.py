"""Where extraction time goes: JPEG decoding alone, then ``extract_features`` end to end, twice.

    python benchmarks/bench_extract.py [--model pcb] [--images 4000] [--json out.json]

Synthetic Market-like query + gallery JPEGs (128×64, seeded), a freshly initialised model saved as a state dict
(throughput does not depend on the weights). Reported, in images/s:

* decode: ``visual.data.iter_decoded`` over all files (PIL decode + bicubic resize in the worker threads), no model;
* extract, first call: ``extract_features`` in a fresh process state: includes cuDNN's autotuning of every new
  batch shape (the full batch and each side's short last batch);
* extract, second call: the same, with those shapes already tuned.

``--device cpu --images 40 --model resnet50 --scale 0.25`` smoke-tests it on a CPU (figures meaningless).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="pcb", choices=["pcb", "resnet50", "densenet121"])
    p.add_argument("--images", type=int, default=4000, help="query + gallery images (one query per 5)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--scale", type=float, default=1.0, help="scale of the reference test size")
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.device != "cpu" and not torch.cuda.is_available():
        print("bench_extract: CUDA is not available; run it on a CUDA GPU", file=sys.stderr)
        return 2

    from streid_lib.metadata import SPLIT_FOLDERS, read_dataset_root
    from streid_lib.visual import data as vdata
    from streid_lib.visual.config import ExtractConfig
    from streid_lib.visual.extract import extract_features
    from streid_lib.visual.models import TEST_SIZE, build_model

    dev = torch.device(args.device)
    torch.backends.cudnn.benchmark = True  # as after train_model in the same process
    h, w = (max(32, round(v * args.scale)) for v in TEST_SIZE[args.model])
    res: dict = {
        "gpu": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (smoke test only)",
        "torch": str(torch.__version__),
        "model": args.model,
        "input": [h, w],
        "batch_size": args.batch_size,
        "workers": vdata.default_workers(),
    }
    with tempfile.TemporaryDirectory(prefix="streid_extract_") as tmp:
        n_ids = max(1, args.images // 5)
        root = vdata.write_toy_dataset(Path(tmp) / "data", n_ids=2, per_id=4, n_query_ids=n_ids)
        splits = read_dataset_root(root)
        paths = [root / SPLIT_FOLDERS["query"] / n for n in splits.query.names]
        paths += [root / SPLIT_FOLDERS["gallery"] / n for n in splits.gallery.names]
        res["images"] = len(paths)

        t0 = time.perf_counter()
        for _ in vdata.iter_decoded(paths, h, w, args.batch_size):
            pass
        res["decode_images_per_s"] = round(len(paths) / (time.perf_counter() - t0), 1)

        torch.manual_seed(0)
        ckpt = Path(tmp) / "state.pth"
        torch.save(build_model(args.model, 2, weights="none").state_dict(), ckpt)
        for k in ("first", "second"):
            extract = ExtractConfig(model=args.model, batch_size=args.batch_size, height=h, width=w, train=False)
            fs = extract_features(extract, checkpoint=ckpt, data_root=root, device=dev, progress=False)
            res[f"extract_{k}_call_images_per_s"] = round(len(paths) / fs.provenance["seconds"], 1)
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
