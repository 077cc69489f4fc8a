"""GPU benchmark of the visual stream: PCB training images/s at 384×192, fast path vs plain loop, and
extraction images/s.

    python benchmarks/bench_gpu_train.py [--train-images 3004] [--steps 200] [--no-compile] [--json out.json]

What is measured, in one run on one GPU, with synthetic Market-like data (JPEG crops of 128×64 written to a
temporary folder, 751 identities; the throughput does not depend on the image content):

* fast path: the training set decoded once into device memory, augmentation on the device (flip, random
  erasing p=0.5, normalisation), bf16 autocast, channels-last, fused SGD; each step replayed as one CUDA graph
  (``train_model``'s default on one GPU) and eager, at batch 32 and ``--extra-batch-sizes``; and with
  ``torch.compile`` (last: its warm-up is long) unless ``--no-compile``;
* plain loop: a torchvision ``DataLoader`` over the JPEG files (decode + resize + flip + ToTensor + Normalize +
  erasing per image in 16 worker processes), fp32 (cuDNN's TF32 default), NCHW, PyTorch's default SGD loop:
  the reference's way;
* extraction: model-side (normalised PCB features of an image + its flip, from uint8 batches already in memory)
  in fp32 and bf16, and end to end (``extract_features`` reading JPEGs) in fp32.

Targets on an H100: ≥ 2,000 training images/s for PCB with the fast path at the recipe's batch 32,
and ≥ 3× the plain loop.
Needs only torch, torchvision, numpy, Pillow (and what streid_lib.visual imports: no pandas/matplotlib).
Exits with status 2 and a message when CUDA is not available.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-images", type=int, default=3004, help="synthetic training images (751 ids × 4)")
    p.add_argument("--ids", type=int, default=751, help="training identities (classes)")
    p.add_argument("--batch-size", type=int, default=32, help="reference batch size 32")
    p.add_argument("--steps", type=int, default=200, help="timed steps of the fast path")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps before timing (cuDNN autotune, compile)")
    p.add_argument("--plain-steps", type=int, default=60, help="timed steps of the plain DataLoader loop")
    p.add_argument("--workers", type=int, default=None, help="DataLoader workers / decoding threads (default ≤16)")
    p.add_argument("--no-compile", action="store_true", help="skip the torch.compile measurement")
    p.add_argument(
        "--extra-batch-sizes", type=int, nargs="*", default=[], help="also time the eager fast path at these batch "
        "sizes (not the recipe's 32: how far the GPU is from saturated)",
    )  # fmt: skip
    p.add_argument("--extract-images", type=int, default=2000, help="gallery+query images for the extraction run")
    p.add_argument("--extract-batch", type=int, default=128, help="images per extraction forward pass")
    p.add_argument("--json", default=None, help="also write the figures here")
    p.add_argument("--size", type=int, nargs=2, default=[384, 192], metavar=("H", "W"), help="input (PCB: 384 192)")
    p.add_argument("--device", default="cuda", help="'cpu' only to smoke-test this script (figures meaningless)")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(msg, flush=True)


def cycle_batches(trainset, n: int, batch_size: int, size, erasing: float, seed: int):
    """Full batches over as many shuffled epochs as needed (seeded like train_model).

    Each epoch's short last batch is left out: under ``torch.compile`` a new batch shape recompiles the
    graph, and that one-off cost (once per run in train_model) must not land inside the timed steps.
    """
    from streid_lib.visual import data as vdata

    for epoch in itertools.count():
        order = vdata.shard_indices(n, vdata.derive_seed(seed, epoch, 0), 0, 1)
        gen = torch.Generator(trainset.device).manual_seed(vdata.derive_seed(seed, epoch, 0, 2))
        for x, y in trainset.batches(order, batch_size, size, erasing, gen):
            if y.shape[0] == batch_size:
                yield x, y


def time_training(runner, batches, warmup: int, steps: int, batch_size: int) -> tuple[float, float]:
    """(images/s over ``steps`` timed steps, warm-up seconds)."""
    t0 = time.perf_counter()
    runner.run(batches, warmup, max_steps=warmup)
    warm_s = time.perf_counter() - t0
    stats = runner.run(batches, steps, max_steps=steps)
    return stats["seen"] / stats["seconds"], warm_s


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.device != "cpu" and not torch.cuda.is_available():
        print(
            "bench_gpu_train: CUDA is not available on this machine; this benchmark measures GPU throughput "
            "and needs a CUDA GPU (run it on one, e.g. an H100).",
            file=sys.stderr,
        )
        return 2

    from streid_lib.visual import data as vdata
    from streid_lib.visual.config import ExtractConfig
    from streid_lib.visual.extract import embed_batch, extract_features
    from streid_lib.visual.models import build_model
    from streid_lib.visual.train import EpochRunner, TrainConfig, build_optimizer

    dev = torch.device("cuda:0" if args.device != "cpu" else "cpu")
    torch.backends.cudnn.benchmark = True
    workers = args.workers or vdata.default_workers()
    gpu = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU (smoke test only)"
    res: dict = {
        "gpu": gpu,
        "torch": str(torch.__version__),
        "cuda": torch.version.cuda,
        "batch_size": args.batch_size,
        "input": list(args.size),
        "workers": workers,
        "cpu_count": os.cpu_count(),
    }
    log(f"GPU: {gpu} | torch {torch.__version__} (CUDA {torch.version.cuda}) | CPUs {os.cpu_count()}")
    log(f"workers {workers} | batch {args.batch_size} | input {args.size[0]}x{args.size[1]}")
    size = tuple(args.size)
    bs = args.batch_size

    def save() -> None:  # after every figure: a run stopped by a time limit keeps what it measured
        if args.json:
            Path(args.json).parent.mkdir(parents=True, exist_ok=True)
            Path(args.json).write_text(json.dumps(res, indent=2) + "\n")

    with tempfile.TemporaryDirectory(prefix="streid_bench_") as tmp:
        per_id = max(2, round(args.train_images / args.ids))
        n_query_ids = max(1, round(args.extract_images / (per_id + 1)))
        t0 = time.perf_counter()
        root = vdata.write_toy_dataset(
            Path(tmp) / "data", n_ids=args.ids, per_id=per_id, n_query_ids=n_query_ids, size=(128, 64), seed=0
        )
        paths, labels, class_pids = vdata.training_split(root)
        log(f"wrote {len(paths)} training JPEGs (128x64, {len(class_pids)} ids) in {time.perf_counter() - t0:.1f} s")

        # ---------------- fast path
        t0 = time.perf_counter()
        images = vdata.decode_images(paths, *size, workers=workers)
        decode_s = time.perf_counter() - t0
        trainset = vdata.MemoryTrainSet(images, torch.from_numpy(labels), dev)
        res["decode_images_per_s"] = round(len(paths) / decode_s, 1)
        log(f"decode once: {len(paths)} images in {decode_s:.1f} s ({len(paths) / decode_s:.0f} img/s), on device")

        cfg = TrainConfig(model="pcb")

        def fast(name: str, compiled: bool, vbs: int, graph: bool = False) -> None:
            torch.manual_seed(0)
            model = build_model("pcb", len(class_pids), weights="none").to(dev).to(memory_format=torch.channels_last)
            model.train()
            net = torch.compile(model) if compiled else model
            runner = EpochRunner(net, build_optimizer(model, cfg), dev, amp=True, cuda_graph=graph, graph_batch=vbs)
            batches = cycle_batches(trainset, len(trainset), vbs, size, 0.5, seed=0)
            steps = args.steps if vbs == bs else max(10, args.steps * bs // vbs)
            try:
                ips, warm = time_training(runner, batches, args.warmup, steps, vbs)
            except Exception as exc:  # report and continue: the other figures are still worth having
                log(f"{name}: FAILED ({type(exc).__name__}: {exc})")
                res[name] = {"error": f"{type(exc).__name__}: {exc}"}
                return
            res[name] = {"images_per_s": round(ips, 1), "warmup_s": round(warm, 1), "batch_size": vbs}
            how = "CUDA graph" if graph else "compiled" if compiled else "eager"
            log(f"{name}: {ips:.0f} train img/s at batch {vbs} ({how}; bf16, channels-last, fused SGD, device "
                f"augmentation; warm-up {warm:.1f} s)")  # fmt: skip
            save()

        # Eager first, torch.compile last: its warm-up is the one long, unpredictable step.
        fast("fast_graph", False, bs, graph=True)  # train_model's default on one GPU
        fast("fast_eager", False, bs)
        for b in args.extra_batch_sizes:
            fast(f"fast_graph_batch{b}", False, b, graph=True)
            fast(f"fast_eager_batch{b}", False, b)

        # ---------------- plain loop
        torch.manual_seed(0)
        model = build_model("pcb", len(class_pids), weights="none").to(dev).train()
        runner = EpochRunner(model, build_optimizer(model, cfg, fused=False), dev, amp=False)
        loader = vdata.plain_loader(paths, labels, size, size, 0.5, bs, workers, seed=0)
        batches = itertools.chain.from_iterable(loader for _ in itertools.count())
        ips, warm = time_training(runner, batches, 5, args.plain_steps, bs)
        res["plain_fp32_dataloader"] = {"images_per_s": round(ips, 1), "warmup_s": round(warm, 1)}
        log(f"plain: {ips:.0f} train img/s (fp32, torchvision DataLoader with {workers} workers)")
        del runner, loader, batches, model
        if dev.type == "cuda":
            torch.cuda.empty_cache()

        def summarise() -> float:
            timed = [res.get(k, {}) for k in ("fast_graph", "fast_eager", "fast_compiled")]
            best = max((v["images_per_s"] for v in timed if "images_per_s" in v), default=0.0)
            res["best_fast_images_per_s"] = best
            res["speedup_vs_plain"] = round(best / res["plain_fp32_dataloader"]["images_per_s"], 2)
            res["train_60_epochs_market_min"] = round(60 * 12936 / max(best, 1e-9) / 60, 1)
            save()
            return best

        summarise()

        # ---------------- extraction (a freshly initialised model: throughput does not depend on the weights,
        # and a few from-scratch steps at the reference lr can leave dead ReLUs, i.e. all-zero features)
        torch.manual_seed(1)
        trained = build_model("pcb", len(class_pids), weights="none").to(dev).eval()
        if dev.type == "cuda":
            trained = trained.to(memory_format=torch.channels_last)
        x = torch.randint(0, 256, (args.extract_batch, *size, 3), dtype=torch.uint8, device=dev)
        for prec, amp in (("fp32", False), ("bf16", True)):
            for _ in range(3):
                embed_batch(trained, x, dev, amp)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            reps = 10
            for _ in range(reps):
                embed_batch(trained, x, dev, amp)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            ips = reps * x.shape[0] / (time.perf_counter() - t0)
            res[f"extract_model_{prec}_images_per_s"] = round(ips, 1)
            log(f"extraction, model side ({prec}, image + flip, normalised): {ips:.0f} img/s")
        ckpt = Path(tmp) / "pcb_state.pth"
        torch.save(trained.state_dict(), ckpt)
        extract = ExtractConfig(
            model="pcb", batch_size=args.extract_batch, height=size[0], width=size[1], workers=workers, train=False
        )
        fs = extract_features(extract, checkpoint=ckpt, data_root=root, device=dev, progress=False)
        n = len(fs.query) + len(fs.gallery)
        res["extract_end_to_end_fp32_images_per_s"] = round(n / fs.provenance["seconds"], 1)
        log(f"extraction, end to end (JPEG decode + fp32): {n} images in {fs.provenance['seconds']:.1f} s "
            f"({n / fs.provenance['seconds']:.0f} img/s)")  # fmt: skip
        save()
        del trained, x

        if not args.no_compile:
            fast("fast_compiled", True, bs)
        best = summarise()

    ok_abs = best >= 2000
    ok_rel = res["speedup_vs_plain"] >= 3
    log(
        f"\nSUMMARY on {gpu}: fast {best:.0f} img/s (target ≥ 2000: {'met' if ok_abs else 'NOT met'}), "
        f"plain {res['plain_fp32_dataloader']['images_per_s']:.0f} img/s, speed-up {res['speedup_vs_plain']}x "
        f"(target ≥ 3x: {'met' if ok_rel else 'NOT met'}); 60 Market epochs ≈ {res['train_60_epochs_market_min']} min"
    )
    save()
    log(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
