"""The paper's claims as rows of one table: what the paper found, what this study found (a
paired difference with its 95 % interval), the smallest effect this design could have detected,
and the verdict (:mod:`sedlib.study.intervals`).

:func:`catalogue` reads a study's per-seed records (``figures/<profile>/results.jsonl``) and
lists every claim of the paper those runs can test, matching each of our configurations to its
counterpart in the paper by role (Figure 1: the base backbone plays ``fmn10``, its double width
``fmn20``, a sequence model's dim relative to its backbone's scaled default picks the paper's
dim; TCN and MAMBA, which the paper finds short of ``fmn20``, are tested that way; ATT, for
which it states no comparison, is not) or by name (Figure 2: the widths the paper has). The
paper's numbers are its released checkpoints' PSDS1 (SPEC 4.1, :data:`PAPER_PSDS1`); where the
paper states a direction without a number SPEC.md holds (Table I, the strides, ATT / TCN /
MAMBA), the row says so and its reach is not judged.

:func:`assess` turns a claim into a row (:mod:`sedlib.study.claims_report`: into ``claims.md``
and the forest plot). Power:
a paired design whose interval has half-width ``h`` (quantile ``q`` of the interval's t (or
normal) distribution) detects an effect of ``(q + q_0.8) / q * h`` with 80 % probability at the
95 % level (:func:`minimum_detectable_effect`); an inconclusive verdict says whether the paper's
effect was that large (within reach) or not.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from sedlib.study.intervals import INCONCLUSIVE, Interval, compare_configurations, verdict_word

#: PSDS1 (%) of the paper's released configurations (SPEC 4.1; the mean over the paper's runs).
PAPER_PSDS1: dict[str, float] = {
    "fmn04": 39.52, "fmn06": 40.75, "fmn10": 42.28, "fmn20": 43.86, "fmn30": 44.24,
    "fmn10+TF:128": 42.75, "fmn10+TF:256": 43.86, "fmn10+TF:512": 44.11, "fmn10+TF:1024": 44.55,
    "fmn10+HYBRID:128": 43.45, "fmn10+HYBRID:256": 44.05, "fmn10+HYBRID:512": 44.32,
    "fmn10+HYBRID:1024": 44.48, "fmn10+BiGRU:128": 43.13, "fmn10+BiGRU:256": 43.53,
    "fmn10+BiGRU:512": 43.96, "fmn10+BiGRU:1024": 44.50,
    "fmn04+TF:104": 40.10, "fmn04+HYBRID:104": 41.37, "fmn04+BiGRU:104": 40.81,
    "fmn06+TF:160": 41.78, "fmn06+HYBRID:160": 42.54, "fmn06+BiGRU:160": 40.37,
    "fmn20+TF:512": 45.13, "fmn20+HYBRID:512": 45.44, "fmn20+BiGRU:512": 44.94,
    "fmn30+TF:768": 45.64, "fmn30+HYBRID:768": 45.67, "fmn30+BiGRU:768": 45.77,
}
#: Families the paper finds short of the doubled-width CNN at every dim (Fig. 1); no numbers in SPEC.
SHORT_OF_WIDE = ("TCN", "MAMBA")
#: fmn10+TF:256 with KD on AudioSet Weak as well and twice the epochs (Table II; SPEC 4.1).
PAPER_WEAK_KD_2X = 45.25
POWER = 0.8
ANY = "*"  # a side's field that must be set (not None), whatever its value


@dataclass(frozen=True)
class Claim:
    """One claim: side ``a`` beats (``sign`` +1) or loses to (-1) side ``b``. A side is a
    mapping of record fields to values (:data:`ANY`: set to anything). ``paper``: the paper's
    ``a - b`` in PSDS1 points, None where SPEC.md holds no number. ``classes``: the claim is
    on these classes' mean PSDS1 only."""

    key: str
    source: str
    text: str
    a: Mapping[str, Any]
    b: Mapping[str, Any]
    sign: int
    paper: float | None = None
    paper_basis: str = ""
    classes: tuple[str, ...] | None = None


def paper_gain_range(family: str) -> tuple[float, float] | None:
    """The smallest and largest gain (PSDS1 points) of ``family`` at the scaled dim over the CNN
    alone across the paper's widths fmn04..fmn30 (SPEC 4.1; fmn10 at dim 256), or None when
    SPEC.md has no numbers for it (ATT, TCN, MAMBA)."""
    dims = {"fmn04": 104, "fmn06": 160, "fmn10": 256, "fmn20": 512, "fmn30": 768}
    gains = [PAPER_PSDS1[f"{b}+{family}:{d}"] - PAPER_PSDS1[b] for b, d in dims.items()
             if f"{b}+{family}:{d}" in PAPER_PSDS1]
    return (round(min(gains), 2), round(max(gains), 2)) if gains else None


def minimum_detectable_effect(iv: Interval, power: float = POWER) -> float:
    """The smallest true difference this paired design detects with probability ``power`` at
    the interval's level: ``(q_level + q_power) * se`` (module doc); NaN without an interval."""
    from scipy.stats import norm, t

    if not iv.known or iv.half_width == 0:
        return math.nan
    dist = t(iv.n - 1) if iv.n > 1 else norm
    q = float(dist.ppf(0.5 + iv.confidence / 2))
    return (q + float(dist.ppf(power))) * iv.half_width / q


def _matches(record: Mapping[str, Any], side: Mapping[str, Any]) -> bool:
    return all(record.get(k) is not None if v == ANY else record.get(k) == v for k, v in side.items())


def _base(record: Mapping[str, Any]) -> dict[str, Any]:
    """The side fields of a plain run (no KD, no weak set, fine-tuned, not continued) at its steps."""
    return {"name": record["name"], "steps": record.get("steps"), "kd_weight": 0.0,
            "weak_data": None, "frozen_backbone": False, "continued": False}


def derived_records(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Copies of the Experiments' records (rows of another ``kind``, 06's and 07's, test no claim)
    with ``continued``: whether ``init`` is another run's key or in its folder (Table II's 2x)."""
    recs = [dict(r.record) if hasattr(r, "record") else dict(r) for r in records  # ExperimentResults too
            if hasattr(r, "record") or r.get("kind") is None]
    keys = [r["key"] for r in recs if r.get("key")]
    for r in recs:
        init = str(r.get("init") or "")
        r["continued"] = any(init == k or f"{k}/" in init for k in keys)
    return recs


def paper_dim(dim: int, backbone: str) -> int:
    """The paper's fmn10 dim nearest (log scale) to ``dim`` relative to ``backbone``'s scaled
    default (e.g. fmn02's 64 = fmn10's 256)."""
    from sedlib.models.names import DEFAULT_DIMS

    rel = dim * DEFAULT_DIMS["fmn10"] / DEFAULT_DIMS.get(backbone, dim)
    return min((128, 256, 512, 1024), key=lambda d: abs(math.log2(d / rel)))


def _gap(a: str, b: str) -> tuple[float | None, str]:
    if a in PAPER_PSDS1 and b in PAPER_PSDS1:
        return round(PAPER_PSDS1[a] - PAPER_PSDS1[b], 2), f"{a} {PAPER_PSDS1[a]:.2f} vs {b} {PAPER_PSDS1[b]:.2f}"
    return None, ""


def catalogue(records: Iterable[Mapping[str, Any]]) -> list[Claim]:
    """Every claim of the paper the records can test (module doc), in the paper's order."""
    return _catalogue(derived_records(records))


def _catalogue(derived: Sequence[Mapping[str, Any]]) -> list[Claim]:
    """:func:`catalogue` of records that :func:`derived_records` has prepared."""
    from sedlib.data.synth.soundscape import LONG_CONTEXT_CLASSES
    from sedlib.models.names import BACKBONES, parse_name

    recs = [r for r in derived if r.get("name")]
    plain = [r for r in recs if _matches(r, _base(r)) and "(" not in r["name"]]
    if not plain:
        return []
    budget = Counter(r.get("steps") for r in plain).most_common(1)[0][0]
    names = list(dict.fromkeys(r["name"] for r in plain if r.get("steps") == budget))
    cnns = [n for n in names if parse_name(n).seq_model is None]
    seqs = [n for n in names if parse_name(n).seq_model]
    side = {n: {**_base({"name": n}), "steps": budget} for n in names}
    out: list[Claim] = []
    base = min((parse_name(n).backbone for n in seqs), key=lambda b: BACKBONES[b], default=None)
    wide = next((c for c in cnns if base and BACKBONES[c] == 2 * BACKBONES[base]), None)
    for n in (s for s in seqs if parse_name(s).backbone == base):
        cfg = parse_name(n)
        twin = f"fmn10+{cfg.seq_model}:{paper_dim(cfg.seq_dim, base)}"
        if base in cnns:
            paper, basis = _gap(twin, "fmn10")
            out.append(Claim(f"fig1-{n}-cnn", "Fig. 1", f"`{n}` beats the CNN alone `{base}`", side[n], side[base],
                             +1, paper, basis or "direction: every family beats fmn10 in Fig. 1 "
                             "(no number in SPEC.md)"))
            if all(any(c in (r.get("psds1_per_class") or {}) for c in LONG_CONTEXT_CLASSES) for r in plain):
                out.append(Claim(f"fig1-{n}-cnn-context", "Fig. 1", f"on the long-context classes, `{n}` beats "
                                 f"`{base}`", side[n], side[base], +1, None,
                                 "the mechanism: sequence models add temporal context",
                                 classes=tuple(LONG_CONTEXT_CLASSES)))
        if wide and cfg.seq_model in SHORT_OF_WIDE:
            out.append(Claim(f"fig1-{n}-wide", "Fig. 1", f"`{n}` stays behind the doubled width `{wide}`", side[n],
                             side[wide], -1, None, "direction: the paper's TCN and MAMBA fall short of fmn20 "
                             "(size not in SPEC.md)"))
        elif wide and twin in PAPER_PSDS1:
            paper, basis = _gap(twin, "fmn20")
            sign = -1 if paper < 0 else +1
            verb = "stays behind" if sign < 0 else "matches or beats"
            out.append(Claim(f"fig1-{n}-wide", "Fig. 1", f"`{n}` {verb} the doubled width `{wide}`", side[n],
                             side[wide], sign, paper, basis + "; the paper's sequence models pass fmn20 from dim 256"
                             " (HYBRID) / 512 (TF, BiGRU)"))
    for n in seqs:
        cfg = parse_name(n)
        if cfg.backbone == base or cfg.backbone not in cnns:
            continue
        paper, basis = _gap(n, cfg.backbone)
        out.append(Claim(f"fig2-{n}", "Fig. 2", f"`{n}` beats `{cfg.backbone}` alone", side[n], side[cfg.backbone],
                         +1, paper, basis or "direction: at every width (paper: +0.6 to +1.9 for TF / HYBRID)"))
    for b in sorted({parse_name(n).backbone for n in seqs}, key=lambda b: BACKBONES[b])[:1]:
        hyb = next((n for n in seqs if parse_name(n).backbone == b and parse_name(n).seq_model == "HYBRID"), None)
        tf = next((n for n in seqs if parse_name(n).backbone == b and parse_name(n).seq_model == "TF"
                   and hyb and parse_name(n).seq_dim == parse_name(hyb).seq_dim), None)
        if hyb and tf:
            out.append(Claim("fig2-hybrid-low", "Fig. 2", f"at the smallest width HYBRID beats TF (`{hyb}` vs `{tf}`)",
                             side[hyb], side[tf], +1, *_gap("fmn04+HYBRID:104", "fmn04+TF:104")))
    out += _training_claims(recs, budget)
    return out


def _training_claims(recs: Sequence[Mapping[str, Any]], budget: int) -> list[Claim]:
    """Table I (KD, frozen vs fine-tuned), Table II (weak-set KD, 2x training), the strides."""
    out: list[Claim] = []
    kd = [r for r in recs if r.get("kd_weight", 0) > 0 and r.get("weak_data") is None and r.get("steps") == budget
          and not r["continued"]]
    for frozen in (False, True):
        on = next((r for r in kd if bool(r.get("frozen_backbone")) == frozen), None)
        if on is None:
            continue
        off = {**_base(on), "frozen_backbone": frozen}
        if any(_matches(r, off) for r in recs):
            what = "frozen" if frozen else "fine-tuned"
            out.append(Claim(f"table1-kd-{what}", "Table I", f"KD {on['kd_weight']:g} beats no KD ({what} backbone)",
                             {**off, "kd_weight": on["kd_weight"]}, off, +1, None,
                             "direction: without KD the students fall clearly behind (size not in SPEC.md)"))
    if {bool(r.get("frozen_backbone")) for r in kd} == {False, True}:
        on = next(r for r in kd if not r.get("frozen_backbone"))
        ft = {**_base(on), "kd_weight": on["kd_weight"]}
        out.append(Claim("table1-finetune", "Table I", "fine-tuning the backbone beats freezing it (with KD)", ft,
                         {**ft, "frozen_backbone": True}, +1, None, "direction (size not in SPEC.md)"))
    weak = [r for r in recs if r.get("weak_data") is not None and r.get("kd_weight", 0) > 0]
    r = next((x for x in weak if not x["continued"]), None)
    if r is not None:
        strong = {**_base(r), "kd_weight": r["kd_weight"], "steps": budget}
        w = {**strong, "weak_data": r["weak_data"]}
        out.append(Claim("table2-weak", "Table II", "distilling on a teacher-only set as well beats KD on the "
                         "labelled set alone", w, strong, +1, None,
                         f"part of fmn10+TF:256 43.86 -> {PAPER_WEAK_KD_2X} (with 2x training)"))
        if any(_matches(x, {**w, "continued": True}) for x in weak):
            out.append(Claim("table2-longer", "Table II", "training twice as long helps on top of weak-set KD",
                             {**w, "continued": True}, w, +1, None, f"the rest of 43.86 -> {PAPER_WEAK_KD_2X}"))
            out.append(Claim("table2-both", "Table II", "weak-set KD and 2x training together beat KD alone",
                             {**w, "continued": True}, strong, +1,
                             round(PAPER_WEAK_KD_2X - PAPER_PSDS1["fmn10+TF:256"], 2),
                             f"fmn10+TF:256 {PAPER_WEAK_KD_2X} vs 43.86"))
    for r in recs:
        if r["name"].endswith("(clip-wise strides)") and r.get("steps") == budget:
            frame = r["name"].split(" (")[0]
            if any(x["name"] == frame for x in recs):
                out.append(Claim(f"strides-{frame}", "Sec. II-A", f"frame-wise strides beat clip-wise ones (`{frame}`)",
                                 {**_base(r), "name": frame}, {**_base(r), "name": r["name"]}, +1, None,
                                 "direction: the reason for the stride adaptation (size not in SPEC.md); "
                                 "our clip-wise net starts from a frame-wise pre-trained backbone"))
            break
    return out


def assess(records: Iterable[Mapping[str, Any]], claim: Claim) -> dict[str, Any]:
    """One row: ``claim``, ``ours`` (the paired Interval of ``a - b``), ``mde`` (80 % power),
    ``verdict`` (the word) and ``reach`` (for an inconclusive one: whether the paper's effect
    was within what the design detects). ValueError when a side has no records."""
    return _assess(derived_records(records), claim)


def _assess(derived: Sequence[Mapping[str, Any]], claim: Claim) -> dict[str, Any]:
    """:func:`assess` on records that :func:`derived_records` has prepared."""
    from sedlib.study.findings import on_classes

    labelled = []
    for label, want in (("a", claim.a), ("b", claim.b)):
        rows = [{**r, "_side": label} for r in derived if _matches(r, want)]
        if not rows:
            raise ValueError(f"claim {claim.key}: no records match {dict(want)}")
        labelled += rows
    common = set.intersection(*({r.get("seed") for r in labelled if r["_side"] == s} for s in "ab"))
    labelled = [r for r in labelled if r.get("seed") in common]  # paired: the seeds both sides ran
    if claim.classes:
        labelled = on_classes(labelled, claim.classes)
    iv = compare_configurations(labelled, "a", "b", "psds1_macro", by="_side")
    mde = minimum_detectable_effect(iv)
    word = verdict_word(iv, claim.sign)
    reach = ""
    if word == INCONCLUSIVE:
        if claim.paper is None or math.isnan(mde):
            reach = "the paper's size unknown: reach not judged"
        elif abs(claim.paper) >= mde:
            reach = "the paper's effect was within reach"
        else:
            reach = f"the paper's effect is below the smallest detectable ({mde:.1f})"
    return {"claim": claim, "ours": iv, "mde": mde, "verdict": word, "reach": reach}


def sweep_claims(sweep: Sequence[Mapping[str, Any]]) -> tuple[list[Claim], list[dict[str, Any]]]:
    """The median filter's claims (Sec. III-B) from a window sweep
    (:func:`sedlib.study.median_window.median_window_sweep` rows) and the records they compare."""
    from sedlib.study.median_window import window_records

    recs = window_records(sweep)
    out = []
    names = {r["name"] for r in recs}
    for m in dict.fromkeys(r["model"] for r in recs):
        if f"{m}, odd windows" in names:
            out.append(Claim(f"median-odd-{m}", "Sec. III-B", f"odd median windows beat their even neighbours "
                             f"(`{m}`, validation clips)", {"name": f"{m}, odd windows"},
                             {"name": f"{m}, even windows"}, +1, None, "direction (size not in SPEC.md)"))
        if f"{m}, window 9" in names:
            out.append(Claim(f"median-9-{m}", "Sec. III-B", f"the 9-frame median filter beats none (`{m}`, "
                             "validation clips)", {"name": f"{m}, window 9"}, {"name": f"{m}, window 1"}, +1, None,
                             "direction: the reference filters with 9 frames (size not in SPEC.md)"))
    return out, recs


def assess_all(records: Iterable[Mapping[str, Any]],
               sweep: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """:func:`assess` of every claim in :func:`catalogue` (records read once), then those of a
    median-window ``sweep`` (:func:`sweep_claims`) when one is given."""
    recs = derived_records(records)
    rows = [_assess(recs, c) for c in _catalogue(recs)]
    claims, sweep_recs = sweep_claims(sweep) if sweep else ([], [])
    return rows + [assess(sweep_recs, c) for c in claims]
