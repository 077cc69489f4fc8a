"""streid: a reproducible study of st-ReID (Wang et al., AAAI 2019); the evaluation side needs no torch."""

__version__ = "0.1.0"
