"""PSDS taught on a model's own outputs (notebook 00's primer).

PSDS (polyphonic sound detection score, Bilen et al. 2020; as sed_scores_eval computes it)
scores a detector over **every** threshold at once:

1. At a threshold, the frame scores become events (runs of frames above it, after the median
   filter). A detection counts for its class when enough of it lies on that class's true
   events (**DTC**, detection tolerance: >= 0.7 of its length for PSDS1); a true event counts as
   found when the DTC-passing detections cover enough of it (**GTC**, ground-truth tolerance:
   >= 0.7). A detection that fails DTC is a false positive; one lying on another class's event
   is a **cross-trigger** (PSDS2 charges those extra; PSDS1 does not).
2. Per class, sweeping the threshold traces TPR (found events / true events) against eFPR
   (false positives per hour): the class's **PSD-ROC**. Its normalised area up to 100 false
   positives per hour is that class's PSDS1.
3. The study's **PSDS1 macro** is the mean of the per-class values (the paper's number).
   **PSDS1 with alpha_st = 1** takes the area under (mean TPR - 1 x standard deviation of TPR
   across classes) instead: it punishes classes the detector finds unevenly and collapses to
   0 as soon as some classes are found far less than others, which is why it is 0.00 in
   many tables while the macro value is not.

:func:`criteria` applies step 1 to one clip (the DTC/GTC arithmetic of sed_scores_eval's
intersection-based criteria, for display); :func:`psd_rocs` computes steps 2-3 with
sed_scores_eval itself.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

DTC = GTC = 0.7  # PSDS1's tolerances
MAX_EFPR = 100.0


def _overlap(a0: float, a1: float, spans: Sequence[tuple[float, float]]) -> float:
    """Seconds of ``[a0, a1]`` covered by the (possibly overlapping) ``spans``."""
    cuts = sorted((max(a0, s0), min(a1, s1)) for s0, s1 in spans if min(a1, s1) > max(a0, s0))
    total, end = 0.0, a0
    for s0, s1 in cuts:
        s0 = max(s0, end)
        if s1 > s0:
            total, end = total + s1 - s0, s1
    return total


def criteria(detections: Sequence[Any], truth: Sequence[Any], *, dtc: float = DTC, gtc: float = GTC):
    """Step 1 of the module doc on one clip: ``(detection rows, truth rows)`` as DataFrames.
    Events have ``onset``, ``offset``, ``label`` (:class:`sedlib.data.labels.Event`). A
    detection row: its DTC ratio (share of it on its class's true events), whether it passes,
    and the other classes' events it overlaps (cross-triggers). A truth row: its GTC ratio
    (share of it covered by the DTC-passing detections of its class) and whether it is found."""
    import pandas as pd

    det_rows, passing = [], []
    for d in detections:
        length = d.offset - d.onset
        same = [(t.onset, t.offset) for t in truth if t.label == d.label]
        ratio = _overlap(d.onset, d.offset, same) / length if length > 0 else 0.0
        others = sorted({t.label for t in truth
                         if t.label != d.label and min(d.offset, t.offset) > max(d.onset, t.onset)})
        det_rows.append({"class": d.label, "onset (s)": round(d.onset, 2), "offset (s)": round(d.offset, 2),
                         "DTC ratio": round(ratio, 2), f"DTC >= {dtc:g}": ratio >= dtc,
                         "overlaps (cross-trigger)": ", ".join(others)})
        if ratio >= dtc:
            passing.append(d)
    gt_rows = []
    for t in truth:
        spans = [(d.onset, d.offset) for d in passing if d.label == t.label]
        ratio = _overlap(t.onset, t.offset, spans) / (t.offset - t.onset) if t.offset > t.onset else 0.0
        gt_rows.append({"class": t.label, "onset (s)": round(t.onset, 2), "offset (s)": round(t.offset, 2),
                        "GTC ratio": round(ratio, 2), f"found (GTC >= {gtc:g})": ratio >= gtc})
    return pd.DataFrame(det_rows), pd.DataFrame(gt_rows)


def primer_inputs(model: Any, dataset: Any, audio: Any, *, clips: int = 100, median_window: int = 9,
                  threshold: float = 0.5) -> dict[str, dict[str, Any]]:
    """A trained ``model``'s view of the first ``clips`` of ``dataset`` (items ``waveform``,
    ``targets``, ``filename``; ``dataset.vocab``), keyed by clip: ``scores`` (median-filtered
    sigmoid frame scores as sed_scores_eval DataFrames), ``truth`` and ``events`` (the true
    events, the detections at ``threshold``; :class:`sedlib.data.labels.Event` lists) and
    ``durations``."""
    import torch

    from sedlib.audio.frontend import MelFrontend
    from sedlib.data.labels import decode_frames
    from sedlib.evaluate.postprocess import median_filter
    from sedlib.evaluate.scores_io import scores_to_dataframe

    frontend, vocab, fs = MelFrontend(audio).eval(), dataset.vocab, audio.frame_seconds
    out: dict[str, dict[str, Any]] = {"scores": {}, "truth": {}, "events": {}, "durations": {}}
    model = model.eval()
    for i in range(min(clips, len(dataset))):
        item = dataset[i]
        name, seconds = item["filename"], audio.clip_seconds
        with torch.no_grad():
            logits = model(frontend(item["waveform"][None]))[0][0]  # (K, T)
        probs = median_filter(torch.sigmoid(logits).numpy(), median_window)  # (K, T)
        out["scores"][name] = scores_to_dataframe(probs, list(vocab.names), fs, seconds)
        out["truth"][name] = decode_frames(item["targets"].numpy() > 0.5, vocab, name, fs, seconds)
        out["events"][name] = decode_frames(probs > threshold, vocab, name, fs, seconds)
        out["durations"][name] = seconds
    return out


def criteria_figure(detections: Sequence[Any], truth: Sequence[Any], classes: Sequence[str], *,
                    duration: float, dtc: float = DTC, title: str = ""):
    """One row per class present: true events as wide grey bars, detections as narrow bars on
    them (green: pass DTC, red: fail), each labelled with its DTC ratio; seconds on the x axis."""
    import plotly.graph_objects as go

    det_rows, _ = criteria(detections, truth, dtc=dtc)
    shown = [c for c in classes if any(e.label == c for e in (*truth, *detections))]
    y = {c: i for i, c in enumerate(shown)}
    fig = go.Figure()
    for t in truth:
        fig.add_shape(type="rect", x0=t.onset, x1=t.offset, y0=y[t.label] - 0.4, y1=y[t.label] + 0.4,
                      fillcolor="rgba(120,120,120,0.35)", line={"width": 0})
    for d, row in zip(detections, det_rows.to_dict("records")):
        ok = row[f"DTC >= {dtc:g}"]
        fig.add_shape(type="rect", x0=d.onset, x1=d.offset, y0=y[d.label] - 0.15, y1=y[d.label] + 0.15,
                      fillcolor="#2ca02c" if ok else "#d62728", line={"width": 0})
        fig.add_annotation(x=(d.onset + d.offset) / 2, y=y[d.label] + 0.3, text=f"{row['DTC ratio']:.2f}",
                           showarrow=False, font={"size": 10})
    for name, color in (("true event", "rgba(120,120,120,0.6)"), (f"detection, DTC >= {dtc:g}", "#2ca02c"),
                        (f"detection, DTC < {dtc:g} (a false positive)", "#d62728")):
        fig.add_trace(go.Scatter(x=[None], y=[None], mode="markers", name=name,
                                 marker={"symbol": "square", "size": 12, "color": color}))
    fig.update_xaxes(range=[0, duration], title="time (s)")
    fig.update_yaxes(tickvals=list(y.values()), ticktext=list(y), range=[-0.6, len(shown) - 0.4])
    fig.update_layout(title=title, template="plotly_white", height=160 + 45 * len(shown), width=820,
                      legend={"orientation": "h", "y": -0.25})
    return fig


def psd_rocs(scores: Mapping[str, Any], ground_truth: Mapping[str, Sequence[Any]],
             durations: Mapping[str, float], *, alpha_st: float = 1.0) -> dict[str, Any]:
    """Steps 2-3 of the module doc, by sed_scores_eval: ``psds`` (with ``alpha_st``),
    ``per_class`` ({class: PSDS1}), ``macro`` (their mean), ``rocs`` ({class: (tpr, efpr)}),
    ``effective`` (the alpha_st-combined (tpr, efpr)). ``scores``: {clip: score DataFrame};
    ``ground_truth``: {clip: [(onset, offset, label), ...]}. Only classes with true events in
    these clips are scored (as the study's engine does)."""
    from sed_scores_eval.intersection_based import psds

    gt = {c: [tuple(e) if not hasattr(e, "label") else (e.onset, e.offset, e.label) for e in evs]
          for c, evs in ground_truth.items()}
    present = {e[2] for evs in gt.values() for e in evs}  # a class without true events has no TPR
    scores = {c: df[["onset", "offset", *[k for k in df.columns[2:] if k in present]]] for c, df in scores.items()}
    value, per_class, effective, rocs = psds(dict(scores), gt, dict(durations), dtc_threshold=DTC,
                                             gtc_threshold=GTC, alpha_st=alpha_st, max_efpr=MAX_EFPR)
    return {"psds": float(value), "per_class": {c: float(v) for c, v in per_class.items()},
            "macro": float(np.mean(list(per_class.values()))),
            "rocs": {c: (np.asarray(r[0]), np.asarray(r[1])) for c, r in rocs.items()},
            "effective": (np.asarray(effective[0]), np.asarray(effective[1]))}


def psd_roc_figure(result: Mapping[str, Any], classes: Sequence[str], *, title: str = ""):
    """The PSD-ROC (TPR against false positives per hour, up to 100) of ``classes``, each
    labelled with its PSDS1 (its normalised area), and the alpha_st = 1 effective curve."""
    import plotly.graph_objects as go

    from sedlib.study.plots import _COLORS

    fig = go.Figure()
    for i, c in enumerate(classes):
        tpr, efpr = result["rocs"][c]
        keep = efpr <= MAX_EFPR
        last = tpr[keep][-1] if keep.any() else 0.0  # the curve runs flat to 100 FP / hour
        fig.add_trace(go.Scatter(x=np.r_[efpr[keep], MAX_EFPR], y=np.r_[tpr[keep], last],
                                 mode="lines", line={"shape": "hv", "color": _COLORS[i % len(_COLORS)]},
                                 name=f"{c}: PSDS1 {100 * result['per_class'][c]:.1f}"))
    tpr, efpr = result["effective"]
    keep = efpr <= MAX_EFPR
    fig.add_trace(go.Scatter(x=efpr[keep], y=tpr[keep], mode="lines",
                             line={"shape": "hv", "color": "black", "dash": "dash"},
                             name=f"all classes, mean - 1 x std of TPR (alpha_st = 1): "
                                  f"PSDS1 {100 * result['psds']:.1f}"))
    fig.update_xaxes(title="false positives per hour (eFPR)", range=[0, MAX_EFPR])
    fig.update_yaxes(title="true positive rate (found / true events)", range=[0, 1.02])
    fig.update_layout(title=title, template="plotly_white", width=820, height=480,
                      legend={"orientation": "h", "y": -0.22})
    return fig
