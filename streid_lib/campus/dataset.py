"""Write a campus dataset root: images, names, manifests, sequence table, truth and provenance."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import itertools
import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import __version__
from .._io import check_output_path, partial_dir, remove_stale_leftovers, write_json_atomic, write_text_atomic
from ..metadata import SEQ_LENGTHS_FILE, SPLIT_FOLDERS
from .config import CampusConfig, campus_preset
from .render import camera_blur, draw_camera_looks, draw_crop_params, draw_outfits, encode_jpeg, render_batch
from .simulate import CampusError, CampusNetwork, build_network, concat, simulate_walkers, take, truth_histogram
from .truth import TRUTH_DESCRIPTION, TRUTH_FILE, TransitTruth

INFO_FILE = "campus.json"
MANIFEST_FILE = "manifest.csv"
SPLITS = ("train", "gallery", "query")
_MAX_BATCHES = 200


@dataclass(frozen=True)
class CampusInfo:
    """What :func:`generate_campus` wrote: ``preset`` name, ``images`` (False = names only),
    ``counts`` per split ``{"images", "ids", "junk", "distractors"}``, ``files`` (name → path of every non-image
    file), ``st_params`` (:func:`recommended_st_params`) and ``seconds`` (wall time, not written to disk)."""

    root: Path
    preset: str
    seed: int
    naming: str
    images: bool
    config: CampusConfig
    counts: dict
    files: dict[str, Path]
    st_params: dict
    seconds: float = field(default=0.0, compare=False)


def recommended_st_params(cfg: CampusConfig) -> dict:
    """HP layout for a campus: the faithful 100-frame bins and σ = 50 bins (83 s at 60 fps, below the spread of one
    route's transit times), with enough bins for any |Δt|: ``{"bin_width", "n_bins", "sigma"}``."""
    bw = 100
    return {"bin_width": bw, "n_bins": int(math.ceil(cfg.recording_frames / bw)) + 1, "sigma": 50.0}


def _seq_lengths(cfg: CampusConfig, rng: np.random.Generator) -> list[list[int]]:
    """Split each camera's recording into its Market-style sequences (frames, summing to the recording)."""
    t = cfg.recording_frames
    out = []
    for c in range(cfg.n_cams):
        n = cfg.seqs_per_cam[c % len(cfg.seqs_per_cam)]
        w = rng.uniform(0.6, 1.4, size=n)
        cuts = np.floor(np.cumsum(w) / w.sum() * t).astype(np.int64)
        cuts[-1] = t
        out.append([int(x) for x in np.diff(np.concatenate([[0], cuts]))])
    return out


def _draw_people(cfg: CampusConfig, net: CampusNetwork, rng: np.random.Generator) -> tuple[tuple, tuple]:
    """First ``n_people`` walkers seen by ≥2 cameras and first ``n_distractors`` seen by exactly one (WalkerSample)."""
    multi, single = [], []  # WalkerSample parts
    n_multi = n_single = 0
    batch = max(256, 2 * (cfg.n_people + cfg.n_distractors))
    for _ in range(_MAX_BATCHES):
        if n_multi >= cfg.n_people and n_single >= cfg.n_distractors:
            break
        s = simulate_walkers(net, cfg, batch, rng)
        seen = s.recorded.sum(axis=1)  # cameras that recorded each walker
        multi.append(take(s, np.flatnonzero(seen >= 2)))
        single.append(take(s, np.flatnonzero(seen == 1)))
        n_multi += len(multi[-1].cams)
        n_single += len(single[-1].cams)
    else:
        raise CampusError(
            f"after {_MAX_BATCHES * batch} walkers only {n_multi} were seen by two cameras and {n_single} by one; "
            f"needed n_people={cfg.n_people}, n_distractors={cfg.n_distractors}: raise detect_prob or recording_s"
        )
    return (
        take(concat(multi), np.arange(cfg.n_people)),
        take(concat(single), np.arange(cfg.n_distractors)),
    )


def compute_truth(
    cfg: CampusConfig, net: CampusNetwork, rng: np.random.Generator, n: int | None = None
) -> TransitTruth:
    """Monte-Carlo ground truth from ``n`` (default ``cfg.truth_mc``) walkers of the same model."""
    n = cfg.truth_mc if n is None else n
    hist = sum(  # in batches of 50,000 walkers
        truth_histogram(
            simulate_walkers(net, cfg, min(50_000, n - done), rng),
            cfg.n_cams,
            cfg.truth_bin_width,
            cfg.recording_frames,
        )[0]
        for done in range(0, n, 50_000)
    )
    return TransitTruth(hist, cfg.truth_bin_width, float(cfg.fps), n, cfg.recording_frames)


def _names(
    pids: np.ndarray, cams: np.ndarray, frames: np.ndarray, naming: str, seq_lengths: list[list[int]]
) -> np.ndarray:
    """File names for crops (cams 1-based, global frames); Market BB = rank among crops of one camera frame."""
    n = len(pids)
    pid_txt = ["-1" if p == -1 else f"{p:04d}" for p in pids]
    if naming == "duke":
        return np.array([f"{p}_c{c}_f{f:07d}.jpg" for p, c, f in zip(pid_txt, cams, frames)], dtype=object)
    seq = np.empty(n, np.int64)
    local = np.empty(n, np.int64)
    for c in np.unique(cams):
        m = cams == c
        cum = np.cumsum(seq_lengths[c - 1])
        s = np.searchsorted(cum, frames[m], side="right")
        seq[m] = s + 1
        local[m] = frames[m] - (cum[s] - np.asarray(seq_lengths[c - 1])[s])
    order = np.lexsort((np.arange(n), frames, cams))
    key = cams[order] * (10**8) + frames[order]
    start = np.r_[True, key[1:] != key[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    bb = np.empty(n, np.int64)
    bb[order] = np.arange(n) - group_start + 1
    return np.array(
        [f"{p}_c{c}s{s}_{f:06d}_{b:02d}.jpg" for p, c, s, f, b in zip(pid_txt, cams, seq, local, bb)], dtype=object
    )


#: Files of a campus written before ``campus.json`` listed them (``written_files``).
_LEGACY_FILES = (INFO_FILE, MANIFEST_FILE, SEQ_LENGTHS_FILE, TRUTH_FILE, *(f"{s}.txt" for s in SPLITS))
_LEGACY_FILES += tuple(f"manifest_{s}.csv" for s in SPLITS)


def _foreign_entries(root: Path) -> list[str]:
    """Entries under ``root`` (relative; folders with a trailing ``/``) that the campus generator did not write, as its
    ``campus.json`` (and, with images, its ``manifest.csv``) lists them; unreadable lists vouch for nothing."""
    files: set[str] = set()
    folders: set[str] = set()
    with contextlib.suppress(OSError, ValueError, AttributeError, TypeError):
        info = json.loads((root / INFO_FILE).read_text(encoding="utf-8"))
        files = set(info.get("written_files", _LEGACY_FILES))
        if info.get("images", True) and MANIFEST_FILE in files:
            folders = {SPLIT_FOLDERS[s] for s in SPLITS}
            with (root / MANIFEST_FILE).open(newline="", encoding="utf-8") as fh:
                files.update(row[0] for row in itertools.islice(csv.reader(fh), 1, None) if row)
    foreign = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        for d in list(dirnames):
            r = (rel / d).as_posix()
            if r not in folders or (Path(dirpath) / d).is_symlink():
                foreign.append(r + "/")
                dirnames.remove(d)  # a foreign folder is named once, not file by file
        foreign.extend(r for f in filenames if (r := (rel / f).as_posix()) not in files)
    return sorted(foreign)


def _check_destination(out: Path) -> None:
    """Refuse a destination that cannot be written or holds files the generator did not write (before any work);
    remove staging folders that killed earlier runs left beside ``out`` (``.NAME.partial-PID``)."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise CampusError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not (out / INFO_FILE).is_file():
        raise CampusError(
            f"{out}: folder is not empty and holds no {INFO_FILE}; refusing to replace something "
            "that is not a campus dataset (choose an empty or new --out)"
        )
    foreign = _foreign_entries(out) if out.exists() else []
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise CampusError(
            f"{out}: holds {len(foreign)} file(s) the campus generator did not write ({shown}); "
            "refusing to replace it (move them elsewhere or choose another --out)"
        )
    try:  # an existing campus is replaced by renames: the folder above it must take new entries
        where, what = (out.parent, "folder above the campus") if out.exists() else (out, "campus folder")
        check_output_path(where, kind="folder", what=what)
    except ValueError as exc:
        raise CampusError(str(exc)) from None
    remove_stale_leftovers(out.parent, name=out.name)


def _swap_into_place(stage: Path, out: Path) -> None:
    """Move the finished staging folder onto ``out``, checked again first (files added meanwhile are never lost); the
    old campus is moved aside under a staging name that the next run removes if this one is killed in between."""
    _check_destination(out)
    old = Path(f"{stage}-old")
    if out.exists():
        os.replace(out, old)
    os.replace(stage, out)
    shutil.rmtree(old, ignore_errors=True)


def generate_campus(
    out: str | Path,
    preset: str = "small",
    seed: int = 0,
    naming: str = "market",
    images: bool = True,
    progress: bool = True,
    **overrides,
) -> CampusInfo:
    """Generate a campus dataset root ``out`` (layout: the package docstring); same arguments → same bytes.

    ``preset``: ``"tiny"``, ``"small"`` or ``"large"``, with :class:`CampusConfig` field ``overrides``
    (``n_cams=4``); ``seed`` draws the people, their looks and the truth's Monte Carlo; ``naming``: ``"market"`` or
    ``"duke"``; ``images=False`` writes names, manifests and truth only. An earlier campus at ``out`` is replaced
    only when every file in it is one the generator wrote; anything wrong raises :class:`CampusError` before any work.
    """
    t0 = time.perf_counter()
    if naming not in ("market", "duke"):
        raise CampusError(f"naming: expected 'market' or 'duke', got {naming!r}")
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise CampusError(f"seed: expected a non-negative integer, got {seed!r}")
    cfg = campus_preset(preset, **overrides)
    if cfg.n_people + cfg.n_distractors > 9999:
        raise CampusError(
            f"n_people + n_distractors = {cfg.n_people + cfg.n_distractors}: at most 9999 (4-digit person ids)"
        )
    if not str(out).strip():
        raise CampusError("--out: the path is empty; expected a folder for the campus")
    out = Path(out)
    _check_destination(out)
    net = build_network(cfg.n_cams, cfg.layout_seed)
    ss = np.random.SeedSequence([int(seed), 2019])
    rng_sim, rng_split, rng_truth, rng_render = (np.random.default_rng(s) for s in ss.spawn(4))
    seq_lengths = _seq_lengths(cfg, np.random.default_rng([cfg.layout_seed, 31]))

    # People and their crops.
    people, distractors = _draw_people(cfg, net, rng_sim)
    everyone = concat([people, distractors])
    w, step, j = np.nonzero(everyone.crop_frames >= 0)  # one row per crop: walker, pass, crop of the pass
    view_per_pass = rng_split.choice(3, size=everyone.cams.shape, p=[0.4, 0.4, 0.2])  # 0 front, 1 back, 2 side
    n_all = len(everyone.cams)
    is_test = np.zeros(n_all, bool)
    is_test[rng_split.permutation(cfg.n_people)[: cfg.n_query_ids]] = True
    is_distractor = np.arange(n_all) >= cfg.n_people
    pid_of = np.zeros(n_all, np.int64)
    pid_of[: cfg.n_people] = rng_split.permutation(cfg.n_people) + 1
    if naming == "duke":  # Duke's single-camera distractors carry ordinary ids
        pid_of[cfg.n_people :] = cfg.n_people + 1 + np.arange(cfg.n_distractors)
    split = np.where(is_test[w] | is_distractor[w], 1, 0)  # 0 train, 1 gallery, 2 query
    # One query per test identity and camera, from passes with ≥2 crops (the rest stays in the gallery).
    n_pass = everyone.n_crops[w, step]
    first = np.r_[True, (w[1:] != w[:-1]) | (step[1:] != step[:-1])]
    pass_start = np.maximum.accumulate(np.where(first, np.arange(len(w)), 0))
    pick = np.floor(rng_split.random(len(w)) * n_pass).astype(np.int64)
    is_query = is_test[w] & (n_pass >= 2) & (np.arange(len(w)) - pass_start == pick[pass_start])
    split[is_query] = 2
    # Junk crops (pid -1): random camera and time, distinct (camera, frame) from each other.
    n_junk = int(round(cfg.junk_rate * int((split == 1).sum())))
    junk_cam = rng_split.integers(1, cfg.n_cams + 1, size=n_junk)
    junk_frame = rng_split.choice(cfg.recording_frames, size=n_junk, replace=False)
    kind = np.r_[np.zeros(len(w), np.int64), np.ones(n_junk, np.int64)]  # 1 = junk
    owner = np.r_[w, np.zeros(n_junk, np.int64)]
    pids = np.r_[pid_of[w], -np.ones(n_junk, np.int64)]
    cams = np.r_[everyone.cams[w, step] + 1, junk_cam]
    frames = np.r_[everyone.crop_frames[w, step, j], junk_frame]
    views = np.r_[view_per_pass[w, step], rng_split.integers(0, 3, size=n_junk)]
    split = np.r_[split, np.ones(n_junk, np.int64)]
    names = _names(pids, cams, frames, naming, seq_lengths)
    for s in range(3):
        ns = names[split == s]
        if len(set(ns)) != len(ns):
            raise CampusError(f"internal: duplicate file names in split {SPLITS[s]} (seed {seed})")
    order = np.lexsort((names, split))  # write and render in (split, name) order

    stage = partial_dir(out)  # a fresh staging folder beside ``out``, renamed onto it when finished
    try:  # from the staging folder's creation on, any exit but success removes it (Ctrl-C included)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(stage, ignore_errors=True)
            stage.mkdir()
        except OSError as exc:
            raise CampusError(f"{out}: cannot be written ({exc.strerror or exc})") from None
        files: dict[str, Path] = {}
        # Images.
        if images:
            _render_all(stage, order, split, names, owner, kind, cams, views, cfg, rng_render, progress)
        # Name lists, manifests, sequence table.
        for s, sname in enumerate(SPLITS):
            sel = order[split[order] == s]
            write_text_atomic(stage / f"{sname}.txt", "".join(f"{n}\n" for n in names[sel]))
            files[f"{sname}_names"] = out / f"{sname}.txt"
            _write_manifest(stage / f"manifest_{sname}.csv", sel, split, names, pids, cams, frames)
            files[f"manifest_{sname}"] = out / f"manifest_{sname}.csv"
        _write_manifest(stage / MANIFEST_FILE, order, split, names, pids, cams, frames)
        files["manifest"] = out / MANIFEST_FILE
        if naming == "market":
            write_json_atomic(stage / SEQ_LENGTHS_FILE, {str(c + 1): seq_lengths[c] for c in range(cfg.n_cams)})
            files["sequence_lengths"] = out / SEQ_LENGTHS_FILE
        # Ground truth.
        compute_truth(cfg, net, rng_truth).save(stage / TRUTH_FILE)
        files["transit_truth"] = out / TRUTH_FILE
        counts = _counts(split, pids)
        st = recommended_st_params(cfg)
        info = {
            "dataset": "campus",
            "generator": "streid_lib.campus.generate_campus",
            "streid_version": __version__,
            "preset": preset,
            "seed": int(seed),
            "naming": naming,
            "images": bool(images),
            "config": dataclasses.asdict(cfg),
            "network": net.describe(),
            "view_m": [float(x) for x in net.view_m],
            "sequence_lengths": seq_lengths,
            "counts": counts,
            "st_params": st,
            "truth": {"file": TRUTH_FILE, **TRUTH_DESCRIPTION},
            "frames": "global frame = offset(camera, sequence) + local frame; all cameras share one clock",
        }
        files["info"] = out / INFO_FILE
        # What this generator wrote besides the images (those are manifest.csv's paths): a later run may replace
        # the folder only if it holds nothing else.
        info["written_files"] = sorted(p.name for p in files.values())
        write_json_atomic(stage / INFO_FILE, info)
        _swap_into_place(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    return CampusInfo(out, preset, int(seed), naming, bool(images), cfg, counts, files, st, time.perf_counter() - t0)


def _counts(split: np.ndarray, pids: np.ndarray) -> dict:
    out = {}
    for s, name in enumerate(SPLITS):
        p = pids[split == s]
        ids, junk, distractors = np.unique(p[p > 0]).size, (p == -1).sum(), (p == 0).sum()
        out[name] = {"images": p.size, "ids": int(ids), "junk": int(junk), "distractors": int(distractors)}
    return out


def _write_manifest(path: Path, sel, split, names, pids, cams, frames) -> None:
    """``path,pid,camera,frame`` rows (the generated names hold no character that CSV would quote)."""
    rows = (f"{SPLIT_FOLDERS[SPLITS[split[i]]]}/{names[i]},{pids[i]},{cams[i]},{frames[i]}\n" for i in sel)
    write_text_atomic(path, "path,pid,camera,frame\n" + "".join(rows))


def _render_all(stage, order, split, names, owner, kind, cams, views, cfg, rng, progress) -> None:
    from .._progress import progress_bar

    outfits = draw_outfits(int(owner.max(initial=0)) + 1, rng, cfg.n_outfits)
    looks = draw_camera_looks(cfg.n_cams, np.random.default_rng([cfg.layout_seed, 57]))
    quality = [int(np.clip(cfg.jpeg_quality - 8 * (1.0 - looks.downscale[c]), 50, 95)) for c in range(cfg.n_cams)]
    folders = [stage / SPLIT_FOLDERS[s] for s in SPLITS]
    for folder in folders:
        folder.mkdir()
    batch = 128
    with progress_bar(len(order), "campus images", enabled=progress, unit="img", delay=1.0) as bar:
        for start in range(0, len(order), batch):
            idx = order[start : start + batch]
            c0 = cams[idx] - 1
            junk = kind[idx] == 1
            params = draw_crop_params(c0, views[idx], rng)
            if junk.any():
                params = _merge(params, draw_crop_params(c0[junk], views[idx][junk], rng, junk=True), junk)
            who = take(outfits, owner[idx])
            if junk.any():  # junk fragments wear random clothes
                who = _merge(who, draw_outfits(int(junk.sum()), rng), junk)
            imgs = camera_blur(render_batch(who, params, looks, rng), c0, looks)
            for b, i in enumerate(idx):
                (folders[split[i]] / names[i]).write_bytes(encode_jpeg(imgs[b], quality[int(c0[b])]))
            bar.update(len(idx))


def _merge(base, other, mask: np.ndarray):
    """A copy of namedtuple ``base`` whose arrays take ``other``'s values where ``mask`` is set."""
    fields = [np.array(v, copy=True) for v in base]
    for v, o in zip(fields, other, strict=True):
        v[mask] = o
    return type(base)(*fields)
