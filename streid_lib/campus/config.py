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

        def number(v: object) -> bool:
            return isinstance(v, int | float) and math.isfinite(v)

        rules = [  # (field, test of its value, what is expected), checked in this order
            ("n_cams", lambda v: isinstance(v, int) and 1 <= v <= 9,
             "1..9 cameras (one digit in file names); zero cameras cannot record anyone"),
            ("n_cams", lambda v: v >= 2, "at least 2 cameras: re-identification needs a second camera"),
            *((k, lambda v: number(v) and v > 0, "a positive finite number")
              for k in ("fps", "recording_s", "speed_mps", "crops_per_pass")),
            ("crops_per_pass", lambda v: v >= 1, "a mean of at least 1 crop per pass"),
            *((k, lambda v: number(v) and v >= 0, "a non-negative finite number (a rate or scale cannot be negative)")
              for k in ("junk_rate", "speed_log_scale", "hop_speed_jitter", "pause_mean_s")),
            *((k, lambda v: number(v) and 0 <= v <= 1, "a probability in [0, 1]")
              for k in ("detect_prob", "pause_prob")),
            ("detect_prob", lambda v: v > 0, "a probability > 0 (nobody would be recorded)"),
            *((k, lambda v: isinstance(v, int) and v >= 1, "a positive integer")
              for k in ("n_people", "truth_mc", "max_crops_per_pass", "truth_bin_width")),
            *((k, lambda v: isinstance(v, int) and v >= 0, "a non-negative integer")
              for k in ("n_query_ids", "n_distractors", "n_outfits")),
            ("n_query_ids", lambda v: v >= 1, "at least 1 query identity"),
            ("route_cams_p", lambda p: len(p) >= 2 and all(math.isfinite(x) and x >= 0 for x in p) and sum(p[1:]) > 0,
             "non-negative probabilities of visiting 1..L cameras with some mass on L >= 2"),
            ("speed_range_mps", lambda r: 0 < r[0] < r[1], "(low, high) speeds with 0 < low < high"),
            ("speed_tail_df", lambda v: v > 0, "positive degrees of freedom"),
            ("seqs_per_cam", lambda s: bool(s) and all(isinstance(x, int) and 1 <= x <= 9 for x in s),
             "1..9 sequences per camera (one digit in Market names)"),
            ("jpeg_quality", lambda v: 1 <= v <= 95, "1..95"),
        ]  # fmt: skip
        for name, ok, expected in rules:
            if not ok(getattr(self, name)):
                raise bad(name, expected)
        if self.n_query_ids > self.n_people:
            raise CampusError(
                f"campus parameter n_query_ids={self.n_query_ids}: more query identities than people "
                f"(n_people={self.n_people})"
            )
        if self.n_query_ids == self.n_people:
            raise bad("n_query_ids", f"fewer than n_people={self.n_people}, leaving training identities")
        if self.recording_frames * 1.4 / (1.4 + 0.6 * (min(self.seqs_per_cam) - 1)) > 999_999:  # longest sequence
            raise bad("recording_s", "a recording whose sequences fit Market's 6-digit frame counter")
        if self.recording_frames > 9_999_999:
            raise bad("recording_s", "at most 9,999,999 frames (Duke's 7-digit frame field)")
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


def campus_preset(preset: str, **overrides) -> CampusConfig:
    """A validated config from a preset name with field overrides."""
    if preset not in PRESETS:
        raise CampusError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
    names = {f.name for f in dataclasses.fields(CampusConfig)}
    if unknown := sorted(set(overrides) - names):
        raise CampusError(f"unknown campus parameter(s) {unknown}; expected some of {sorted(names)}")
    return dataclasses.replace(PRESETS[preset], **overrides).validate()
