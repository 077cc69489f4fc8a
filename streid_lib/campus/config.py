"""Campus parameters and the three presets (``tiny``, ``small``, ``large``)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from .simulate import CampusError


@dataclass(frozen=True)
class CampusConfig:
    """All parameters of one campus dataset. Units are in the field names or comments.

    Identities: ``n_people`` annotated people seen by at least two cameras, of which
    ``n_query_ids`` are test identities (queries + gallery) and the rest training identities;
    plus ``n_distractors`` people seen by one camera only (gallery only) and junk crops.
    """

    n_cams: int = 6
    fps: float = 60.0  # frames per second (Duke's rate)
    recording_s: float = 7200.0  # length of the shared recording, seconds (432,000 frames at 60 fps)
    n_people: int = 250
    n_query_ids: int = 100
    n_distractors: int = 40
    junk_rate: float = 0.02  # junk crops (pid -1) per gallery crop
    crops_per_pass: float = 3.0  # mean crops per recorded camera pass (>= 1)
    max_crops_per_pass: int = 8
    detect_prob: float = 0.85  # probability that a camera detects a pass
    route_cams_p: tuple[float, ...] = (0.0, 0.45, 0.35, 0.2)  # P(route visits 1, 2, 3, 4 cameras)
    speed_mps: float = 1.3  # median walking speed, metres per second
    speed_log_scale: float = 0.12  # scale of log speed (times a Student t)
    speed_tail_df: float = 3.0  # Student-t degrees of freedom of log speed (heavy tails)
    speed_range_mps: tuple[float, float] = (0.3, 5.0)
    hop_speed_jitter: float = 0.06  # lognormal sigma of per-hop pace changes
    pause_prob: float = 0.08  # probability of a pause on a hop
    pause_mean_s: float = 60.0  # mean pause, seconds
    seqs_per_cam: tuple[int, ...] = (3, 2, 4, 3, 2, 3)  # Market-style sequences per camera (cycled)
    truth_mc: int = 200_000  # Monte-Carlo walkers behind the ground-truth densities
    truth_bin_width: int = 10  # frames per bin of the stored truth (re-binned on use)
    layout_seed: int = 0  # fixes the network; the dataset seed draws the people
    jpeg_quality: int = 90
    n_outfits: int = 120  # clothing catalogue size (lookalikes share an entry); 0 = every person dressed apart

    @property
    def recording_frames(self) -> int:
        """Length of the recording in frames."""
        return int(round(self.recording_s * self.fps))

    def validate(self) -> CampusConfig:
        """Raise :class:`CampusError` naming the first bad field; return ``self``."""

        def bad(name: str, expected: str) -> CampusError:
            return CampusError(f"campus parameter {name}={getattr(self, name)!r}: expected {expected}")

        if not isinstance(self.n_cams, int) or not 1 <= self.n_cams <= 9:
            raise bad("n_cams", "1..9 cameras (one digit in file names); zero cameras cannot record anyone")
        if self.n_cams < 2:
            raise bad("n_cams", "at least 2 cameras: re-identification needs a second camera")
        for name in ("fps", "recording_s", "speed_mps", "crops_per_pass"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v > 0):
                raise bad(name, "a positive finite number")
        if self.crops_per_pass < 1:
            raise bad("crops_per_pass", "a mean of at least 1 crop per pass")
        for name in ("junk_rate", "speed_log_scale", "hop_speed_jitter", "pause_mean_s"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and v >= 0):
                raise bad(name, "a non-negative finite number (a rate or scale cannot be negative)")
        for name in ("detect_prob", "pause_prob"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and 0 <= v <= 1):
                raise bad(name, "a probability in [0, 1]")
        if self.detect_prob == 0:
            raise bad("detect_prob", "a probability > 0 (nobody would be recorded)")
        for name in ("n_people", "truth_mc", "max_crops_per_pass", "truth_bin_width"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise bad(name, "a positive integer")
        for name in ("n_query_ids", "n_distractors", "n_outfits"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 0:
                raise bad(name, "a non-negative integer")
        if self.n_query_ids > self.n_people:
            raise CampusError(
                f"campus parameter n_query_ids={self.n_query_ids}: more query identities than people "
                f"(n_people={self.n_people})"
            )
        if self.n_query_ids < 1:
            raise bad("n_query_ids", "at least 1 query identity")
        if self.n_query_ids == self.n_people:
            raise bad("n_query_ids", f"fewer than n_people={self.n_people}, leaving training identities")
        p = self.route_cams_p
        if len(p) < 2 or any((not math.isfinite(x)) or x < 0 for x in p) or sum(p[1:]) <= 0:
            raise bad("route_cams_p", "non-negative probabilities of visiting 1..L cameras with some mass on L >= 2")
        lo, hi = self.speed_range_mps
        if not 0 < lo < hi:
            raise bad("speed_range_mps", "(low, high) speeds with 0 < low < high")
        if self.speed_tail_df <= 0:
            raise bad("speed_tail_df", "positive degrees of freedom")
        if not self.seqs_per_cam or any((not isinstance(s, int)) or not 1 <= s <= 9 for s in self.seqs_per_cam):
            raise bad("seqs_per_cam", "1..9 sequences per camera (one digit in Market names)")
        n_seq = min(self.seqs_per_cam)
        if self.recording_frames * 1.4 / (1.4 + 0.6 * (n_seq - 1)) > 999_999:  # longest possible sequence
            raise bad("recording_s", "a recording whose sequences fit Market's 6-digit frame counter")
        if self.recording_frames > 9_999_999:
            raise bad("recording_s", "at most 9,999,999 frames (Duke's 7-digit frame field)")
        if not 1 <= self.jpeg_quality <= 95:
            raise bad("jpeg_quality", "1..95")
        return self


PRESETS: dict[str, CampusConfig] = {
    # Tests: a few hundred images, generated in about a second.
    "tiny": CampusConfig(
        recording_s=1200.0,
        n_people=50,
        n_query_ids=20,
        n_distractors=10,
        n_outfits=25,
        truth_mc=40_000,
        seqs_per_cam=(2, 1, 3),
    ),
    # Main job default: 250 identities (150 train, 100 test) + 40 distractors, about 2,000 images.
    "small": CampusConfig(),
    # Market-like scale (1,501 identities, ~30k images); its metadata-only mode feeds benchmarks.
    "large": CampusConfig(
        recording_s=8000.0,  # 480,000 frames: every |Δt| fits 5,000 bins of 100 frames
        n_people=1501,
        n_query_ids=750,
        n_distractors=600,
        crops_per_pass=5.0,
        max_crops_per_pass=12,
        n_outfits=600,
        truth_mc=400_000,
    ),
}


def campus_preset(preset: str | CampusConfig, **overrides) -> CampusConfig:
    """A validated config from a preset name (or a config) with field overrides."""
    if isinstance(preset, CampusConfig):
        cfg = preset
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise CampusError(f"preset: expected one of {sorted(PRESETS)} or a CampusConfig, got {preset!r}")
    if overrides:
        names = {f.name for f in dataclasses.fields(CampusConfig)}
        unknown = sorted(set(overrides) - names)
        if unknown:
            raise CampusError(f"unknown campus parameter(s) {unknown}; expected some of {sorted(names)}")
        cfg = dataclasses.replace(cfg, **overrides)
    return cfg.validate()
