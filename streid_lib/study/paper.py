"""Numbers quoted from the paper (Wang et al., AAAI 2019). Never computed here; every use labels them "quoted".

R1, R5, R10 and mAP in percent; NaN where the paper prints "-".
"""

from __future__ import annotations

PAPER_SOURCE = "quoted: Wang et al., AAAI 2019"
#: The metric columns of the paper's tables.
PAPER_COLUMNS = ("R1", "R5", "R10", "mAP")
_nan = float("nan")

#: Table 1 (Market-1501) and Table 2 (DukeMTMC-reID) rows: R1, R5, R10, mAP (percent; NaN = "-").
PAPER_TABLE1 = {
    "BoW+kissme": (44.4, 63.9, 72.2, 20.8),
    "KLFDA": (46.5, 71.1, 79.9, _nan),
    "Null Space": (55.4, _nan, _nan, 29.9),
    "WARCA": (45.2, 68.1, 76.0, _nan),
    "PAN": (82.8, _nan, _nan, 63.4),
    "SVDNet": (82.3, 92.3, 95.2, 62.1),
    "HA-CNN": (91.2, _nan, _nan, 75.7),
    "SSDAL": (39.4, _nan, _nan, 19.6),
    "APR": (84.3, 93.2, 95.2, 64.7),
    "Human Parsing": (93.9, 98.8, 99.5, _nan),
    "Mask-guided": (83.79, _nan, _nan, 74.3),
    "Background": (81.2, 94.6, 97.0, _nan),
    "PDC": (84.1, 92.7, 94.9, 63.4),
    "PSE+ECN": (90.3, _nan, _nan, 84.0),
    "MultiScale": (88.9, _nan, _nan, 73.1),
    "Spindle Net": (76.9, 91.5, 94.6, _nan),
    "Latent Parts": (80.3, _nan, _nan, 57.5),
    "Part-Aligned": (81.0, 92.0, 94.7, 63.4),
    "PCB(*)": (91.2, 97.0, 98.2, 75.8),
    "TFusion-sup": (73.1, 86.4, 90.5, _nan),
    "st-ReID": (97.2, 99.3, 99.5, 86.7),
    "st-ReID+RE": (98.1, 99.3, 99.6, 87.6),
    "st-ReID+RE+re-rank": (98.0, 98.9, 99.1, 95.5),
}
PAPER_TABLE2 = {
    "BoW+kissme": (25.1, _nan, _nan, 12.2),
    "LOMO+XQDA": (30.8, _nan, _nan, 17.0),
    "PAN": (71.6, _nan, _nan, 51.5),
    "SVDNet": (76.7, _nan, _nan, 56.8),
    "HA-CNN": (80.5, _nan, _nan, 63.8),
    "APR": (70.7, _nan, _nan, 51.9),
    "Human Parsing": (84.4, 91.9, 93.7, 71.0),
    "PSE+ECN": (85.2, _nan, _nan, 79.8),
    "MultiScale": (79.2, _nan, _nan, 60.6),
    "PCB(*)": (83.8, 91.7, 94.4, 69.4),
    "st-ReID": (94.0, 97.0, 97.8, 82.8),
    "st-ReID+RE": (94.4, 97.4, 98.2, 83.9),
    "st-ReID+RE+re-rank": (94.5, 96.8, 97.1, 92.7),
}
#: Table 3 (DukeMTMC-reID): visual baselines with and without the ST stream.
PAPER_TABLE3 = {
    "ResNet50 baseline": (76.9, 87.8, 91.0, 58.7),
    "ResNet50+ST": (87.7, 94.1, 95.8, 72.2),
    "DenseNet121 baseline": (79.3, 89.9, 92.6, 63.3),
    "DenseNet121+ST": (90.8, 95.2, 96.5, 76.9),
    "PCB(*)": (83.8, 91.7, 94.4, 69.4),
    "PCB+ST": (94.0, 97.0, 97.8, 82.8),
}
#: Figure 4 rank-1 values stated in the paper's text (DukeMTMC-reID, section "Ablation Studies"), keyed by our rows.
PAPER_FIGURE4_R1 = {"ST": 5.5, "VIS": 83.8, "VISxST": 86.9, "st-ReID": 94.0}
#: The parameter ranges of Figure 4(c, d) over which the paper says the model "nearly keeps the best performance".
PAPER_LAMBDA_RANGE = (0.4, 2.8)
PAPER_GAMMA_RANGE = (1.0, 7.0)
#: Split sizes the paper states (section "Datasets"): images (train, gallery, query) and training identities.
PAPER_SPLITS = {
    "market": {"train": 12936, "gallery": 19732, "query": 3368, "train_ids": 751},
    "duke": {"train": 16522, "gallery": 17661, "query": 2228, "train_ids": 702},
}
