"""The study's tables: computed rows beside the paper's quoted rows, one table per dataset.

Computed columns go only into the table of the dataset that ran (Table 1 Market-1501, Table 2 DukeMTMC-reID; the
campus: ``tables_1_2_campus``); Table 3 is written for every run. A row whose input the run lacks says "not
computed (needs …)" in its ``source``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..uncertainty import per_query_of, row_interval
from .config import DATASET_LABELS, MODEL_LABELS, StudyConfig
from .outputs import write_table
from .paper import PAPER_COLUMNS, PAPER_SOURCE, PAPER_TABLE1, PAPER_TABLE2, PAPER_TABLE3
from .steps import NotComputed, model_rows

COMPUTED = "computed (this run)"
#: The metrics given a 95 % interval in every results table.
INTERVAL_METRICS = ("R1", "mAP")
#: Rows we compute that are not rows of the paper, and why they are there.
EXTRA_ROWS = {
    "st-ReID+re-rank": "computed (this run); not a row of the paper: re-ranking without RE, to check the "
    "re-ranking claim when no PCB+RE features are given",
}
_PAPER_BY_DATASET = {"market": (PAPER_TABLE1, "Table 1"), "duke": (PAPER_TABLE2, "Table 2")}


@dataclass(frozen=True)
class Table:
    """One table to write: its file name, title, the frame and a sentence under it."""

    name: str
    title: str
    frame: Any
    note: str = ""

    def write(self, cfg: StudyConfig) -> Any:
        """Write it into the run's figures folder (:func:`.outputs.write_table`); returns the table as shown."""
        return write_table(self.frame, self.name, cfg, title=self.title, note=self.note)


def results_frame(rows: dict[str, Any], columns: tuple[str, ...] = PAPER_COLUMNS) -> Any:
    """Rows (``{row: summary or NotComputed}``) as a DataFrame with a ``source`` column (NaN where not computed) and,
    when rows carry per-query results, 95 % intervals ``R1_lo R1_hi mAP_lo mAP_hi`` (:mod:`streid_lib.uncertainty`)."""
    recs = {k: {c: (np.nan if isinstance(v, NotComputed) else float(v[c])) for c in columns} for k, v in rows.items()}
    df = pd.DataFrame.from_dict(recs, orient="index", columns=list(columns))
    for m in INTERVAL_METRICS if any(per_query_of(v) is not None for v in rows.values()) else ():
        bounds = [row_interval(v, m) or (np.nan, np.nan) for v in rows.values()]
        df[f"{m}_lo"], df[f"{m}_hi"] = [b[0] for b in bounds], [b[1] for b in bounds]
    df["source"] = [str(v) if isinstance(v, NotComputed) else EXTRA_ROWS.get(k, COMPUTED) for k, v in rows.items()]
    df.index.name = "method"
    return df


def not_computed_note(rows: dict[str, Any]) -> str:
    """A sentence naming the rows that were not computed and why (empty when all were)."""
    by_reason: dict[str, list[str]] = {}
    for k, v in rows.items():
        if isinstance(v, NotComputed):
            by_reason.setdefault(v.reason, []).append(k)
    return " ".join(f"Not computed: {', '.join(ks)} ({reason})." for reason, ks in by_reason.items())


def paper_frame(paper: dict[str, tuple], prefix: str = "") -> Any:
    """The paper's rows as a DataFrame (columns R1 R5 R10 mAP, with an optional prefix)."""
    return pd.DataFrame.from_dict(paper, orient="index", columns=[f"{prefix}{c}" for c in PAPER_COLUMNS])


def side_by_side(ours: dict[str, Any], paper: dict[str, tuple], paper_label: str) -> Any:
    """Our rows next to the paper's quoted rows (columns ``R1 … mAP``, ``paper R1 …``, ``source``); rows only the
    paper has are appended, quoted."""
    mine = results_frame(ours)
    theirs = paper_frame(paper, "paper ")
    quoted = f"paper columns {PAPER_SOURCE}, {paper_label}"
    mine["source"] = [s if k not in paper else f"{s}; {quoted}" for k, s in mine["source"].items()]
    rest = theirs.loc[[k for k in paper if k not in ours]].copy()
    rest["source"] = f"{PAPER_SOURCE}, {paper_label}"
    df = pd.concat([mine.join(theirs), rest])[list(mine.columns[:-1]) + list(theirs.columns) + ["source"]]
    df.index.name = "method"
    return df


def tables_1_2_rows(cfg: StudyConfig, model) -> dict[str, Any]:
    """Our rows of Tables 1-2 (``NotComputed`` when missing), with ``st-ReID+re-rank`` (not a row of the paper) when
    there are PCB features but no PCB+RE ones, so that the re-ranking claim can still be checked."""
    plain = model_rows(cfg, "pcb", model, ("VIS", "st-ReID"))
    with_re = model_rows(cfg, "pcb_re", model, ("st-ReID",), rerank=True)
    rows = {
        "PCB(*)": plain["VIS"],
        "st-ReID": plain["st-ReID"],
        "st-ReID+RE": with_re["st-ReID"],
        "st-ReID+RE+re-rank": with_re["st-ReID+re-rank"],
    }
    if isinstance(with_re["st-ReID"], NotComputed) and not isinstance(plain["st-ReID"], NotComputed):
        rows["st-ReID+re-rank"] = model_rows(cfg, "pcb", model, ("st-ReID",), rerank=True)["st-ReID+re-rank"]
    return rows


def table_3_rows(cfg: StudyConfig, model) -> dict[str, Any]:
    """Our rows of Table 3: each visual baseline without and with the ST stream (``NotComputed`` when missing)."""
    out = {}
    for key, label in (("resnet50", "ResNet50"), ("densenet121", "DenseNet121"), ("pcb", "PCB")):
        rows = model_rows(cfg, key, model, ("VIS", "st-ReID"))
        out["PCB(*)" if key == "pcb" else f"{label} baseline"] = rows["VIS"]
        out[f"{label}+ST"] = rows["st-ReID"]
    return out


def table_notes(cfg: StudyConfig, ours: dict[str, Any]) -> str:
    """The sentences under a table: :func:`not_computed_note`, then which features stand for the paper's models in a
    features route."""
    given = ", ".join(
        f"{MODEL_LABELS.get(k, k)} rows ← {cfg.model_label(k)} ({Path(p).name})" for k, p in cfg.feature_files.items()
    )
    features = "" if cfg.route.trains else f"Visual features given to this run: {given}."
    return " ".join(p for p in (not_computed_note(ours), features) if p)


def tables_1_2(cfg: StudyConfig, ours: dict[str, Any]) -> list[Table]:
    """The Tables 1-2 files of a run: one computed table for its dataset, the other quoted only (campus: one)."""
    notes = table_notes(cfg, ours)
    if cfg.route.campus:
        df = results_frame(ours)
        for paper, label in ((PAPER_TABLE1, "Market-1501"), (PAPER_TABLE2, "DukeMTMC-reID")):
            theirs = paper_frame({k: paper[k] for k in ours if k in paper}, f"{label} ")
            theirs.columns = [f"{c} (paper)" for c in theirs.columns]
            df = df.join(theirs)
        df = df[[c for c in df.columns if c != "source"] + ["source"]]
        df["source"] = [
            s if k not in PAPER_TABLE1 else f"{s}; paper columns {PAPER_SOURCE}, Tables 1-2"
            for k, s in df["source"].items()
        ]
        title = (
            f"Tables 1-2 rows computed on {cfg.run_label}, beside the paper's Market-1501 and DukeMTMC-reID columns "
            "(quoted)"
        )
        return [Table("tables_1_2_campus", title, df, notes)]
    out = []
    for dataset, (paper, name) in _PAPER_BY_DATASET.items():
        label = DATASET_LABELS[dataset]
        file = name.lower().replace(" ", "")
        if dataset == cfg.dataset:
            title = f"{name} ({label}): rows computed on {cfg.run_label}, beside the paper's (quoted)"
            df = side_by_side(ours, paper, f"{name} ({label})")
            out.append(Table(file, title, df, notes))
        else:
            df = paper_frame(paper)
            df["source"] = f"{PAPER_SOURCE}, {name} ({label})"
            df.index.name = "method"
            note = f"Quoted only: this run is on {cfg.dataset_label}, so nothing in {name} ({label}) is computed."
            out.append(Table(file, f"{name} ({label}): the paper's numbers (quoted)", df, note))
    return out


def table_3(cfg: StudyConfig, ours: dict[str, Any]) -> Table:
    """Table 3 of a run: its rows computed on the run's dataset beside the paper's (DukeMTMC-reID, quoted)."""
    title = f"Table 3 rows computed on {cfg.run_label}, beside the paper's Table 3 (DukeMTMC-reID, quoted)"
    df = side_by_side(ours, PAPER_TABLE3, "Table 3 (DukeMTMC-reID)")
    return Table("table3", title, df, table_notes(cfg, ours))
