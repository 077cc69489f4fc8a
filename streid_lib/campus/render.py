"""Procedural person crops (128×64 RGB), rendered in vectorised numpy batches (docs/reference.md §13.5).

An outfit from a deliberately small palette (so that different people look alike) drawn with pose jitter and a view
over the camera's background, then the camera's cast, gamma, resolution loss, blur, noise and sometimes an occluder.
Junk crops (pid -1) are zoomed-in fragments or empty background.
"""

from __future__ import annotations

import io
from collections import namedtuple

import numpy as np
from PIL import Image

H, W = 128, 64

#: Clothing palette (RGB) and how often each colour is worn on the upper / lower body.
PALETTE = np.array(
    [
        (28, 28, 32),  # 0 black
        (72, 72, 78),  # 1 charcoal
        (135, 135, 140),  # 2 grey
        (222, 222, 216),  # 3 white
        (32, 42, 88),  # 4 navy
        (58, 98, 172),  # 5 blue
        (165, 38, 42),  # 6 red
        (48, 102, 62),  # 7 green
        (194, 174, 134),  # 8 beige
        (106, 72, 46),  # 9 brown
        (214, 184, 58),  # 10 yellow
        (214, 136, 166),  # 11 pink
        (72, 96, 140),  # 12 denim
    ],
    dtype=np.float32,
)
UPPER_P = np.array([0.2, 0.11, 0.1, 0.11, 0.11, 0.07, 0.06, 0.05, 0.07, 0.05, 0.03, 0.04, 0.0])
LOWER_P = np.array([0.3, 0.06, 0.1, 0.03, 0.13, 0.0, 0.0, 0.0, 0.1, 0.06, 0.0, 0.0, 0.22])
SHOE_P = np.array([0.5, 0.15, 0.05, 0.15, 0.05, 0, 0, 0, 0.02, 0.08, 0, 0, 0])
SKIN = np.array([(232, 190, 160), (200, 150, 115), (150, 100, 70), (95, 62, 42)], dtype=np.float32)
HAIR = np.array([(20, 18, 16), (70, 45, 25), (150, 110, 60), (120, 120, 120)], dtype=np.float32)
HAIR_P = np.array([0.55, 0.25, 0.12, 0.08])
N_PATTERNS = 5  # solid, horizontal stripes, vertical stripes, open jacket, chest logo


#: Appearance of P people: colours ``upper``, ``pattern_col``, ``lower``, ``shoes``, ``skin``, ``hair``, ``bag_col``
#: are (P, 3) RGB floats, the rest (P,): ``lower_type`` 0 trousers, 1 shorts, 2 skirt; ``bag`` 0 none, 1 backpack,
#: 2 handbag.
Outfits = namedtuple(
    "Outfits",
    "upper pattern pattern_col stripe_period long_sleeve lower lower_type shoes skin hair long_hair bag bag_col width",
)


#: Outfit fields that a catalogue entry fixes (the rest - skin, hair, bag, build - stay personal).
CLOTHING = ("upper", "pattern", "pattern_col", "stripe_period", "long_sleeve", "lower", "lower_type", "shoes")


def draw_outfits(n: int, rng: np.random.Generator, n_outfits: int = 0) -> Outfits:
    """Draw ``n`` outfits from the small palette, with a little per-person colour jitter; with ``n_outfits > 0``
    from a catalogue of that many clothing combinations (same entry: genuine lookalikes)."""
    if n_outfits > 0:
        people = draw_outfits(n, rng)
        catalogue = draw_outfits(n_outfits, rng)
        pick = rng.integers(0, n_outfits, size=n)
        fields = people._asdict() | {k: getattr(catalogue, k)[pick] for k in CLOTHING}
        for k in ("upper", "pattern_col", "lower", "shoes"):
            fields[k] = fields[k] + rng.normal(0.0, 4.0, size=(n, 3)).astype(np.float32)
        return Outfits(**fields)

    def colour(p: np.ndarray) -> np.ndarray:
        idx = rng.choice(len(PALETTE), size=n, p=p / p.sum())
        return PALETTE[idx] + rng.normal(0.0, 7.0, size=(n, 3)).astype(np.float32)

    upper = colour(UPPER_P)
    pattern = rng.choice(N_PATTERNS, size=n, p=[0.5, 0.14, 0.1, 0.14, 0.12])
    pattern_col = colour(UPPER_P)
    lower_type = rng.choice(3, size=n, p=[0.78, 0.12, 0.1])
    return Outfits(
        upper=upper,
        pattern=pattern,
        pattern_col=pattern_col,
        stripe_period=rng.uniform(5.0, 10.0, size=n).astype(np.float32),
        long_sleeve=rng.random(n) < 0.7,
        lower=colour(LOWER_P),
        lower_type=lower_type,
        shoes=colour(SHOE_P),
        skin=SKIN[rng.choice(len(SKIN), size=n, p=[0.45, 0.3, 0.15, 0.1])]
        + rng.normal(0.0, 5.0, size=(n, 3)).astype(np.float32),
        hair=HAIR[rng.choice(len(HAIR), size=n, p=HAIR_P)],
        long_hair=rng.random(n) < 0.3,
        bag=rng.choice(3, size=n, p=[0.55, 0.3, 0.15]),
        bag_col=colour(SHOE_P),
        width=rng.uniform(1.15, 1.45, size=n).astype(np.float32),
    )


#: Per-camera imaging conditions (leading K axis): ``wall``/``floor`` (K, 3) background colours above/below the
#: ``horizon`` row (K,), ``texture`` (K, H, 2W) multiplicative luminance, ``gain`` (K, 3) colour cast, ``brightness``,
#: ``gamma``, ``blur`` (Gaussian radius, px), ``downscale`` (resolution factor, 1 = sharp), ``noise`` (sd, grey levels).
CameraLooks = namedtuple("CameraLooks", "wall floor horizon texture gain brightness gamma blur downscale noise")


def draw_camera_looks(n_cams: int, rng: np.random.Generator) -> CameraLooks:
    """Imaging conditions of ``n_cams`` cameras: indoor/outdoor backgrounds, casts, blur, resolution."""
    muted = rng.uniform(60, 190, size=(n_cams, 1)) + rng.normal(0, 10, size=(n_cams, 3))
    floor = rng.uniform(50, 150, size=(n_cams, 1)) + rng.normal(0, 8, size=(n_cams, 3))
    # Low-frequency texture: coarse noise upsampled by repetition then smoothed along rows.
    coarse = rng.normal(1.0, 0.2, size=(n_cams, H // 8, (2 * W) // 8))
    tex = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)
    kernel = np.ones(5) / 5.0
    tex = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="same"), 2, tex)
    return CameraLooks(
        wall=muted.astype(np.float32),
        floor=floor.astype(np.float32),
        horizon=rng.uniform(0.45, 0.75, size=n_cams).astype(np.float32) * H,
        texture=tex.astype(np.float32),
        gain=np.clip(1.0 + rng.normal(0.0, 0.06, size=(n_cams, 3)), 0.85, 1.15).astype(np.float32),
        brightness=rng.uniform(0.85, 1.1, size=n_cams).astype(np.float32),
        gamma=rng.uniform(0.9, 1.1, size=n_cams).astype(np.float32),
        blur=rng.uniform(0.3, 1.3, size=n_cams).astype(np.float32),
        downscale=rng.choice([1.0, 0.75, 0.6, 0.5], size=n_cams).astype(np.float32),
        noise=rng.uniform(2.0, 6.0, size=n_cams).astype(np.float32),
    )


#: Per-crop pose, view and nuisance parameters, (B,) arrays: 0-based ``cam``, ``view`` (0 front, 1 back, 2 side);
#: in pixels body centre ``cx``, ``top`` of the head, ``height``, leg ``stride`` at the feet, arm ``swing``, texture
#: ``bg_shift``; ``light`` multiplicative jitter; ``occ_type`` (0 none, 1 bottom, 2 left, 3 right) covering
#: ``occ_size`` of the crop in colour ``occ_col`` (B, 3).
CropParams = namedtuple("CropParams", "cam view cx top height stride swing bg_shift light occ_type occ_size occ_col")


def draw_crop_params(cams: np.ndarray, views: np.ndarray, rng: np.random.Generator, junk: bool = False) -> CropParams:
    """Pose/nuisance parameters for crops of cameras ``cams`` (0-based) seen from ``views``."""
    b = len(cams)
    height = rng.uniform(100.0, 122.0, size=b)
    top = (H - height) * rng.uniform(0.15, 0.85, size=b)
    cx = W / 2 + rng.normal(0.0, 2.5, size=b)
    if junk:  # zoomed fragments, off-centre, or almost only background
        height = rng.uniform(170.0, 320.0, size=b)
        top = rng.uniform(-200.0, 60.0, size=b)
        cx = rng.uniform(-10.0, W + 10.0, size=b)
    occ_type = np.where(rng.random(b) < 0.12, rng.choice([1, 2, 3], size=b, p=[0.6, 0.2, 0.2]), 0)
    return CropParams(
        cam=np.asarray(cams),
        view=np.asarray(views),
        cx=cx.astype(np.float32),
        top=top.astype(np.float32),
        height=height.astype(np.float32),
        stride=rng.uniform(0.0, 10.0, size=b).astype(np.float32),
        swing=rng.uniform(-4.0, 4.0, size=b).astype(np.float32),
        bg_shift=rng.integers(0, W, size=b),
        light=rng.lognormal(0.0, 0.08, size=b).astype(np.float32),
        occ_type=occ_type,
        occ_size=rng.uniform(0.15, 0.4, size=b).astype(np.float32),
        occ_col=(PALETTE[rng.integers(0, len(PALETTE), size=b)] * rng.uniform(0.6, 1.1, size=(b, 1))).astype(
            np.float32
        ),
    )


# Part labels of the label map drawn before colouring (one byte per pixel keeps the masks cheap).
_BG, _LOWER, _SKIN, _SKIN2, _SHOES, _UPPER, _PATTERN, _BAG, _HAIR, _OCC = range(10)
_N_LABELS = 10


def render_batch(outfits: Outfits, crops: CropParams, looks: CameraLooks, rng: np.random.Generator) -> np.ndarray:
    """Render B crops (outfit b in pose b) before camera blur/resolution: (B, H, W, 3) float32 in [0, 255].

    Parts are painted into a (B, H, W) label map, then coloured in one gather from a (B, labels, 3) colour table.
    """
    b = len(crops.cam)
    y = np.arange(H, dtype=np.float32)[None, :, None]
    x = np.arange(W, dtype=np.float32)[None, None, :]

    def col(v: np.ndarray) -> np.ndarray:  # per-crop scalar → broadcastable (B, 1, 1)
        return np.asarray(v, dtype=np.float32)[:, None, None]

    cam = crops.cam
    label = np.zeros((b, H, W), np.uint8)

    def paint(mask: np.ndarray, part: int) -> None:
        label[np.broadcast_to(mask, label.shape)] = part

    h = col(crops.height)
    top = col(crops.top)
    cx = col(crops.cx)
    wf = col(outfits.width)
    view = col(crops.view)
    rel = (y - top) / h  # 0 at the top of the head, 1 at the soles
    dx = x - cx
    adx = np.abs(dx)

    # Legs (two), then shoes.
    leg_t = np.clip((rel - 0.53) / 0.41, 0.0, 1.0)
    spread = 0.04 * h * wf + col(crops.stride) * leg_t
    leg_hw = 0.05 * h * wf
    in_leg_rows = (rel >= 0.53) & (rel < 0.94)
    legs = in_leg_rows & ((np.abs(dx - spread) < leg_hw) | (np.abs(dx + spread) < leg_hw))
    lt = col(outfits.lower_type)
    paint(legs, _LOWER)
    paint(legs & (lt == 1) & (rel > 0.7), _SKIN)
    paint(legs & (lt == 2) & (rel > 0.72), _SKIN2)
    skirt = (lt == 2) & (rel >= 0.52) & (rel < 0.72) & (adx < (0.1 + 0.06 * (rel - 0.52) / 0.2) * h * wf)
    paint(skirt, _LOWER)
    shoes = (rel >= 0.94) & (rel < 1.0) & ((np.abs(dx - spread) < leg_hw * 1.1) | (np.abs(dx + spread) < leg_hw * 1.1))
    paint(shoes, _SHOES)

    # Torso with its pattern.
    torso_t = np.clip((rel - 0.15) / 0.38, 0.0, 1.0)
    side = view == 2
    half = (0.125 - 0.025 * torso_t) * h * wf * np.where(side, np.float32(0.7), np.float32(1.0))
    torso = (rel >= 0.15) & (rel < 0.53) & (adx < half)
    paint(torso, _UPPER)
    pat = col(outfits.pattern)
    period = col(outfits.stripe_period)
    hstripe = (pat == 1) & (np.sin(2 * np.pi * (y - top) / period) > 0.3)
    vstripe = (pat == 2) & (np.sin(2 * np.pi * dx / (0.7 * period)) > 0.3)
    jacket = (pat == 3) & (view == 0) & (adx < 0.035 * h)
    logo = (pat == 4) & (view == 0) & (adx < 0.045 * h) & (rel > 0.22) & (rel < 0.31)
    paint(torso & (hstripe | vstripe | jacket | logo), _PATTERN)

    # Arms beside the torso (in side view one arm swings in front of the body instead).
    swing = col(crops.swing)
    arm_rel = rel - swing / h * adx / (0.2 * h)
    arm_w = 0.05 * h * wf
    arm_x = np.where(side, np.abs(dx - swing) < arm_w, (adx >= half) & (adx < half + arm_w))
    arm_rows = (arm_rel >= 0.16) & (arm_rel < 0.5)
    arms = arm_x & arm_rows
    paint(arms, _UPPER)
    sleeveless = ~col(outfits.long_sleeve).astype(bool)
    paint(arms & sleeveless & (arm_rel > 0.3), _SKIN)
    paint(arm_x & (arm_rel >= 0.5) & (arm_rel < 0.55), _SKIN)

    # Bags: backpack shows from behind (and at the side), straps from the front; handbag at the hip.
    bag = col(outfits.bag)
    chest = (rel > 0.18) & (rel < 0.45)
    backpack_back = (bag == 1) & (view == 1) & (adx < 0.095 * h) & chest
    backpack_side = (bag == 1) & side & (dx < -0.05 * h) & (dx > -0.13 * h) & chest
    straps = (bag == 1) & (view == 0) & (np.abs(adx - 0.06 * h) < 1.2) & (rel > 0.16) & (rel < 0.35)
    handbag = (bag == 2) & (dx > half + 0.01 * h) & (dx < half + 0.08 * h) & (rel > 0.45) & (rel < 0.6)
    paint(backpack_back | backpack_side | straps | handbag, _BAG)

    # Head and hair (hair covers the head from behind).
    hy = top + 0.075 * h
    head = ((dx / (0.055 * h)) ** 2 + ((y - hy) / (0.075 * h)) ** 2) < 1.0
    paint(head, _SKIN)
    hair_front = head & (y < hy - 0.02 * h)
    long_hair = col(outfits.long_hair).astype(bool) & (adx < 0.065 * h) & (rel >= 0.075) & (rel < 0.25)
    paint(hair_front | (head & (view == 1)) | (long_hair & (view != 0)), _HAIR)

    # Occluders: something in front of the person (bottom, left or right band).
    ot = col(crops.occ_type)
    size = col(crops.occ_size)
    occ = ((ot == 1) & (y > H * (1 - size))) | ((ot == 2) & (x < W * size)) | ((ot == 3) & (x > W * (1 - size)))
    paint(occ, _OCC)

    # Colour table (B, labels, 3) in label order; index 0 (background) is filled below.
    o = outfits
    parts = (o.lower, o.skin, o.skin * 0.9, o.shoes, o.upper, o.pattern_col, o.bag_col, o.hair, crops.occ_col)
    table = np.stack([np.zeros((b, 3)), *parts], axis=1).astype(np.float32)

    def camera(c: np.ndarray) -> np.ndarray:  # (B, n, 3) colours → camera response: gamma, cast, brightness
        g = looks.gamma[cam][:, None, None]
        k = (looks.gain[cam] * (looks.brightness[cam] * crops.light)[:, None])[:, None, :]
        return (np.clip(c, 0.0, 255.0) / 255.0) ** g * k * 255.0

    table = camera(table)
    # Each crop sees its own patch of the scene: a random tint and brightness of the camera's wall/floor.
    tint = rng.lognormal(0.0, 0.15, size=(b, 2, 1)) * rng.lognormal(0.0, 0.06, size=(b, 2, 3))
    bgcol = camera(np.stack([looks.wall[cam], looks.floor[cam]], axis=1) * tint.astype(np.float32))  # (B, 2, 3)
    # Background: wall/floor split at the horizon, camera texture shifted per crop.
    rows = np.arange(H)[None, :, None]
    cols = (np.arange(W)[None, None, :] + crops.bg_shift[:, None, None]) % (2 * W)
    tex = looks.texture[cam[:, None, None], rows, cols]
    below = np.broadcast_to(y > col(looks.horizon[cam]), (b, H, W)).astype(np.intp)
    flat_bg = (np.arange(b)[:, None, None] * 2 + below).reshape(-1)
    img = bgcol.reshape(-1, 3)[flat_bg].reshape(b, H, W, 3) * tex[..., None]
    fg = label > 0
    flat = (np.arange(b)[:, None, None] * _N_LABELS + label)[fg]
    img[fg] = table.reshape(-1, 3)[flat]
    img += rng.standard_normal(img.shape, dtype=np.float32) * looks.noise[cam][:, None, None, None]
    return np.clip(img, 0.0, 255.0, out=img)


def camera_blur(img: np.ndarray, cams: np.ndarray, looks: CameraLooks) -> np.ndarray:
    """Per-camera optics and resolution loss on a (B, H, W, 3) batch: a 3-tap filter ``[w, 1-2w, w]`` twice along
    rows and columns, ``w`` from the camera's blur radius and resolution (≈ a Gaussian of σ = sqrt(2·w·passes) px)."""
    sigma = looks.blur[cams] + 0.9 * (1.0 / looks.downscale[cams] - 1.0)  # pixels
    passes = 2
    w = np.clip(sigma**2 / (2.0 * passes), 0.0, 0.33).astype(np.float32)[:, None, None, None]
    out = img
    for _ in range(passes):
        for axis in (1, 2):
            p = np.pad(out, [(1, 1) if a == axis else (0, 0) for a in range(4)], mode="edge")
            n = out.shape[axis]
            lo, mid, hi = (p.take(np.arange(k, k + n), axis=axis) for k in range(3))
            out = (1.0 - 2.0 * w) * mid + w * (lo + hi)
    return out


def encode_jpeg(img: np.ndarray, quality: int) -> bytes:
    """Encode one (H, W, 3) crop as baseline JPEG bytes (fixed quality, 4:2:0; Pillow writes no timestamp)."""
    buf = io.BytesIO()
    Image.fromarray(np.round(img).astype(np.uint8), "RGB").save(buf, "JPEG", quality=quality, subsampling=2)
    return buf.getvalue()
