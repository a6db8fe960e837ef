"""The paper beside this run, as short tables a notebook shows: the set-up (data, budget,
filter), and each configuration's PSDS1 macro beside the paper's counterpart (SPEC 4.1).

Counterparts are matched as :mod:`sedlib.study.claims` matches its claims: in Figure 1's grid by
role (the base backbone plays ``fmn10``, its double width ``fmn20``, a sequence model's dim
relative to its backbone's scaled default picks the paper's dim, so ``fmn02+TF:64`` plays
``fmn10+TF:256``), in Figure 2's by name (the widths the paper has). Absolute values are on
different data (AudioSet Strong vs a synthetic world) and are not comparable; the gains over
the CNN are what the claims compare. Every table has at most 7 columns, values in percent.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from sedlib.study.claims import PAPER_PSDS1, PAPER_WEAK_KD_2X, derived_records, paper_dim
from sedlib.study.findings import difference, records_of, seed_table
from sedlib.study.results import project_relative

#: The paper's set-up (SPEC 5 and 7), row by row as :func:`setup_table` lists ours.
PAPER_SETUP: dict[str, str] = {
    "training data": "AudioSet Strong, ~100k labelled clips",
    "classes": "447 (407 scored)",
    "clip length": "10 s",
    "budget": "120 epochs x 100,000 clips, batch 64 x 4 (~46.9k steps)",
    "backbone start": "fmnXX_weak: AudioSet Weak, with KD",
    "median filter": "9 frames of 40 ms",
    "runs per configuration": "mean over its runs",
}
NOT_IN_SPEC = "-"


def setup_table(study: Any, train: Any, audio: Any, num_classes: int):
    """The paper's set-up beside this run's (``study``, ``train``, ``audio`` configs; the
    trained classes ``num_classes``): a DataFrame indexed by what, columns paper / ours."""
    import pandas as pd

    seeds = study.seeds or [train.seed]
    budget = (f"{study.steps} steps x {train.batch_size} clips" if study.steps
              else f"{train.n_epochs} epochs x {train.epoch_len:,} clips, batch {train.batch_size}")
    ours = {
        "training data": study.train_data,
        "classes": str(num_classes),
        "clip length": f"{audio.clip_seconds:g} s (eval {study.eval_clip_seconds or audio.clip_seconds:g} s)",
        "budget": budget,
        "backbone start": project_relative(study.backbone_init) if study.backbone_init else train.pretrained,
        "median filter": f"{train.median_window} frames of {audio.frame_seconds * 1000:.0f} ms",
        "runs per configuration": f"{len(seeds)} seed{'s' if len(seeds) > 1 else ''}, on {study.eval_data}",
    }
    return pd.DataFrame({"paper": PAPER_SETUP, "ours": ours})


def counterpart(name: str, base: str | None = None) -> str | None:
    """The paper's configuration playing ``name``'s role: by role when ``base`` (the grid's base
    backbone, playing ``fmn10``) is given, else by name; None when the paper has none."""
    from sedlib.models.names import BACKBONES, format_name, parse_name

    cfg = parse_name(name)
    if base is None:
        found = format_name(cfg)
    else:
        ratio = BACKBONES[cfg.backbone] / BACKBONES[base]
        role = {1.0: "fmn10", 2.0: "fmn20"}.get(ratio)
        if role is None:
            return None
        found = role if cfg.seq_model is None else f"{role}+{cfg.seq_model}:" + str(
            paper_dim(cfg.seq_dim, cfg.backbone) * (2 if role == "fmn20" else 1))
    return found if found in PAPER_PSDS1 else None


def _cnn_gain(results: list[dict[str, Any]], name: str, names: set[str]) -> str:
    """Our paired gain of ``name`` over the CNN of its backbone (95 %), "-" without one."""
    from sedlib.models.names import parse_name

    cnn = parse_name(name).backbone
    if parse_name(name).seq_model is None or cnn not in names:
        return NOT_IN_SPEC
    iv = difference(results, name, cnn)
    return f"{iv.mean:+.2f} ± {iv.half_width:.2f}"


def model_table(results: Iterable[Any], *, by_role: bool = True):
    """One row per configuration (plain runs at the grid's budget): ours (mean ± 95 %), its
    paired gain over the CNN of its backbone, the paper's counterpart (:func:`counterpart`), its
    PSDS1 and its gain over the paper's CNN of that width. ``by_role``: Figure 1's matching
    (the smallest backbone with a sequence model plays fmn10), else Figure 2's (by name)."""
    import pandas as pd

    from sedlib.models.names import BACKBONES, parse_name

    recs = records_of(results)
    table = seed_table(recs, metrics=("psds1_macro",))
    names = set(table["name"])
    seqs = [parse_name(n).backbone for n in names if parse_name(n).seq_model]
    base = min(seqs or [parse_name(n).backbone for n in names], key=lambda b: BACKBONES[b]) if by_role else None
    rows = []
    for _, r in table.iterrows():
        twin = counterpart(r["name"], base)
        paper_cnn = parse_name(twin).backbone if twin else None
        paper_gain = (f"{PAPER_PSDS1[twin] - PAPER_PSDS1[paper_cnn]:+.2f}"
                      if twin and parse_name(twin).seq_model and paper_cnn in PAPER_PSDS1 else NOT_IN_SPEC)
        rows.append({"ours": r["name"], "PSDS1 macro (95 %)": r["psds1_macro (95 % CI)"],
                     "gain over its CNN (paired)": _cnn_gain(recs, r["name"], names),
                     "paper's counterpart": twin or NOT_IN_SPEC,
                     "paper PSDS1": f"{PAPER_PSDS1[twin]:.2f}" if twin else NOT_IN_SPEC,
                     "paper's gain over its CNN": paper_gain})
    return pd.DataFrame(rows)


def _condition(record: Mapping[str, Any]) -> str:
    """Table I / II's name for a run, from its fields (``continued``: :func:`derived_records`)."""
    kd = f"KD {record['kd_weight']:g}" if record.get("kd_weight") else "no KD"
    frozen = "frozen" if record.get("frozen_backbone") else "fine-tuned"
    weak = ", + teacher-only set" if record.get("weak_data") else ""
    return f"{kd}, {frozen}{weak}{', 2x training' if record['continued'] else ''}"


#: The paper's PSDS1 for Table I / II's conditions where SPEC 4.1 has one, with its basis.
PAPER_CONDITIONS: dict[str, tuple[float, str]] = {
    "KD 0.9, fine-tuned": (PAPER_PSDS1["fmn10+TF:256"], "fmn10+TF:256 (released; KD 0.9 from its teacher ensemble)"),
    "KD 0.9, fine-tuned, + teacher-only set, 2x training": (
        PAPER_WEAK_KD_2X, "fmn10+TF:256 advanced KD (AudioSet Weak too, 240 epochs)"),
}


def condition_table(results: Iterable[Any]):
    """Table I / II as this run has it: one row per condition (KD weight, frozen or fine-tuned
    backbone, teacher-only set, continued for twice the steps), ours (mean ± 95 %) beside the
    paper's number where SPEC 4.1 holds one (else its direction is in the claims table)."""
    import pandas as pd

    recs = derived_records(results)
    for r in recs:
        r["condition"] = _condition(r)
    model = {r["condition"]: r["name"] for r in recs}
    table = seed_table(recs, by="condition", metrics=("psds1_macro",))
    rows = [{"condition": c, "model": model[c], "PSDS1 macro (95 %)": v,
             "paper PSDS1": f"{PAPER_CONDITIONS[c][0]:.2f}" if c in PAPER_CONDITIONS else NOT_IN_SPEC,
             "paper's configuration": PAPER_CONDITIONS[c][1] if c in PAPER_CONDITIONS else NOT_IN_SPEC}
            for c, v in zip(table["condition"], table["psds1_macro (95 % CI)"])]
    return pd.DataFrame(rows)


def strides_table(results: Iterable[Any], *, by: str = "config"):
    """Notebook 01: each stride pattern's PSDS1 macro (mean ± 95 %) beside the paper's
    frame-wise counterpart (:func:`counterpart` by role); the paper reports no clip-wise number."""
    import pandas as pd

    from sedlib.models.names import parse_name

    table = seed_table(records_of(results), by=by, metrics=("psds1_macro",))
    rows = []
    for label, value in zip(table[by], table["psds1_macro (95 % CI)"]):
        name, _, kind = str(label).partition(", ")
        twin = counterpart(name, parse_name(name).backbone) if kind.startswith("frame") else None
        rows.append({"configuration": label, "PSDS1 macro (95 %)": value,
                     "paper's counterpart": twin or "not reported (the reason for the adaptation)",
                     "paper PSDS1": f"{PAPER_PSDS1[twin]:.2f}" if twin else NOT_IN_SPEC})
    return pd.DataFrame(rows)


def listening_table(train: Any, audio: Any, threshold: float, checkpoint: str):
    """Notebooks 06 / 07: the paper's inference script's settings (SPEC 8) beside this one's."""
    import pandas as pd

    return pd.DataFrame({
        "paper (inference.py)": {"model": "fmn10+TF:256_strong (AudioSet)", "audio": "10 s chunks, last zero-padded",
                                 "median filter": "9 frames of 40 ms", "thresholds": "0.1, 0.2, 0.5"},
        "ours": {"model": project_relative(str(checkpoint)), "audio": f"{audio.clip_seconds:g} s clips",
                 "median filter": f"{train.median_window} frames of {audio.frame_seconds * 1000:.0f} ms",
                 "thresholds": f"{threshold:g} (a slider)"}})
