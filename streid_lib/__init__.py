"""streid: a reproducible study of st-ReID (Spatial-Temporal Person Re-identification, Wang et al., AAAI 2019).

The evaluation side (metadata, st_model, joint, metrics, evaluation, rerank, improved, campus) needs only
numpy/scipy; torch is imported by ``streid_lib.visual`` alone.
"""

__version__ = "0.1.0"
