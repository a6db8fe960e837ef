"""The synthetic classes identified by their temporal pattern, not by one sound.

Each of these classes repeats a sound that is, on its own, drawn from the same distribution as
another class's: a ``beep`` is one tone; an ``alarm`` repeats one tone at a regular period
(0.2-1.5 s); a ``ringtone`` rings that tone twice in quick succession (40-120 ms apart) and
repeats the double ring after a long pause (1.2-2.5 s); a ``knock`` is 1-5 hits 100-300 ms
apart; ``ticking`` repeats a single hit of the knock distribution at a strictly regular period
(0.5-1.2 s). A label spans the whole pattern, pauses included (as annotators of a ringing phone
or a ticking clock label it), so a frame in the middle of a ringtone's pause is up to 1.25 s from
any sound, and one tick looks exactly like a one-hit knock: naming them takes more context than
the small backbones' receptive field (1.63 s in all, about 0.8 s to either side; notebook 01),
which is what the paper's sequence models add. The design, the ranges and why they are what
they are: README "The data set".

Draw/render contract: :mod:`sedlib.data.synth.sounds`.
"""

from __future__ import annotations

import numpy as np

from sedlib.data.synth.dsp import _envelope, _harmonics, _loguniform, _ms, _phase, _whole, samples

Params = dict

#: Parts of a pattern that identify its class within a clip: an alarm's 3 beeps (regular
#: repetition), 3 consecutive rings of a ringtone (so one whole double ring), 2 ticks (one
#: period). In the ``context2`` world a pattern that runs over the clip edge keeps at least these
#: inside the clip; in ``context`` 15 % of alarms and 26 % of ringtones of a 4 s clip showed
#: fewer (a cut alarm's one beep is exactly a ``beep``), labels no model can decide.
IDENTIFYING_PARTS: dict[str, int] = {"alarm": 3, "ringtone": 3, "ticking": 2}


def shows_identity(label: str, segments, start_ms: int, clip_ms: int) -> bool:
    """Whether an event of ``label`` with parts ``segments`` (ms from its start) placed at
    ``start_ms`` keeps :data:`IDENTIFYING_PARTS` whole parts inside a ``clip_ms`` clip."""
    need = IDENTIFYING_PARTS.get(label, 0)
    return sum(1 for a, b in segments if start_ms + a >= 0 and start_ms + b <= clip_ms) >= need


# --- shared sounds ------------------------------------------------------------------------------

def _tone_params(rng: np.random.Generator) -> Params:
    """One beep: the same distribution for ``beep`` and for each tone of an ``alarm`` or a
    ``ringtone``."""
    timbres = ((1.0,), (1.0, 0.0, 1 / 3, 0.0, 1 / 5), (1.0, 0.5, 0.25))
    return {"freq": _loguniform(rng, 500, 3000), "timbre": timbres[rng.integers(len(timbres))],
            "beep_ms": _ms(rng, 0.08, 0.5)}


def _tone(p: Params, rng: np.random.Generator, sr: int) -> np.ndarray:
    n = samples(p["beep_ms"], sr)
    wave = _harmonics(_phase(p["freq"], n, sr, rng), p["timbre"], p["freq"], sr)
    return wave * _envelope(n, sr, 5, 5)


def _hit_sound(rng: np.random.Generator, decay: float) -> Params:
    """The sound of one hit with ring decay time constant ``decay`` (ms): three modes and a
    click; ``ring_ms`` is how long a hit lasts (until its ring is 35 dB down). Shared by
    ``knock`` and ``ticking``."""
    base = _loguniform(rng, 150, 700)
    return {"decay_ms": decay, "ring_ms": _ring_ms(decay),
            "modes": (base, base * rng.uniform(1.4, 2.2), base * rng.uniform(2.5, 3.7)),
            "mode_amps": tuple(rng.uniform(0.3, 1.0, 3)), "click": rng.uniform(0.1, 0.5)}


def _ring_ms(decay: float) -> int:
    return int(np.ceil(decay * np.log(10 ** (35 / 20))))


def render_hits(p: Params, rng: np.random.Generator, sr: int) -> np.ndarray:
    """Hits of ``p`` (:func:`_hit_sound` + ``segments`` + per-hit ``hits`` gains)."""
    out = np.zeros(samples(p["length_ms"], sr))
    for (a, b), hit in zip(p["segments"], p["hits"]):
        n = samples(b - a, sr)
        t = np.arange(n) / sr
        ring = sum(amp * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
                   for f, amp in zip(p["modes"], p["mode_amps"]))
        click = p["click"] * rng.standard_normal(n) * np.exp(-t / 0.0015)
        knock = (ring + click) * np.exp(-t / (p["decay_ms"] / 1000)) * _envelope(n, sr, 1, 3)
        out[samples(a, sr):samples(a, sr) + n] += hit * knock
    return out


def _render_repeated_tone(p: Params, rng: np.random.Generator, sr: int) -> np.ndarray:
    beep = _tone(p, rng, sr)  # one waveform, repeated: the pattern is exactly periodic
    out = np.zeros(samples(p["length_ms"], sr))
    for start, _ in p["segments"]:
        s = samples(start, sr)
        out[s:s + len(beep)] = beep
    return out


# --- the classes --------------------------------------------------------------------------------

def draw_beep(rng, max_ms):
    p = _tone_params(rng)
    p["beep_ms"] = min(p["beep_ms"], max_ms)
    return {**p, "length_ms": p["beep_ms"], "segments": _whole(p["beep_ms"])}


def render_beep(p, rng, sr):
    return _tone(p, rng, sr)


def draw_alarm(rng, max_ms):
    p = _tone_params(rng)
    count, gap = int(rng.integers(3, 9)), _ms(rng, 0.1, 1.0)
    while count > 3 and (count - 1) * (p["beep_ms"] + gap) + p["beep_ms"] > max_ms:
        count -= 1
    gap = max(1, min(gap, (max_ms - count * p["beep_ms"]) // (count - 1)))
    period = p["beep_ms"] + gap
    segments = tuple((k * period, k * period + p["beep_ms"]) for k in range(count))
    return {**p, "period_ms": period, "length_ms": segments[-1][1], "segments": segments}


render_alarm = _render_repeated_tone


def draw_ringtone(rng, max_ms):
    p = _tone_params(rng)
    p["beep_ms"] = min(p["beep_ms"], max_ms // 5)
    ring_gap, pause, bursts = _ms(rng, 0.04, 0.12), _ms(rng, 1.2, 2.5), int(rng.integers(2, 5))
    burst = 2 * p["beep_ms"] + ring_gap
    while bursts > 2 and bursts * burst + (bursts - 1) * pause > max_ms:
        bursts -= 1
    pause = max(1, min(pause, max_ms - 2 * burst))  # short clips: the pause shrinks to fit
    segments = []
    for k in range(bursts):
        start = k * (burst + pause)
        segments += [(start, start + p["beep_ms"]), (start + burst - p["beep_ms"], start + burst)]
    return {**p, "pause_ms": pause, "ring_gap_ms": ring_gap, "length_ms": segments[-1][1],
            "segments": tuple(segments)}


render_ringtone = _render_repeated_tone


def draw_knock(rng, max_ms):
    count, decay = int(rng.integers(1, 6)), rng.uniform(15, 45)  # decay time constant, ms
    ring = _ring_ms(decay)
    segments, t = [], 0
    for _ in range(count):
        if t + ring > max_ms:
            break
        segments.append((t, t + ring))
        t += min(_ms(rng, 0.1, 0.3), ring + 120)  # silent gaps inside the event <= 120 ms
    return {"length_ms": segments[-1][1], "segments": tuple(segments), **_hit_sound(rng, decay),
            "hits": tuple(rng.uniform(0.6, 1.0, len(segments)))}


def draw_ticking(rng, max_ms):
    count, period = int(rng.integers(4, 11)), _ms(rng, 0.5, 1.2)
    p = _hit_sound(rng, rng.uniform(15, 45))
    period = max(period, p["ring_ms"] + 1)
    while count > 3 and (count - 1) * period + p["ring_ms"] > max_ms:
        count -= 1
    period = max(p["ring_ms"] + 1, min(period, (max_ms - p["ring_ms"]) // (count - 1)))
    segments = tuple((k * period, k * period + p["ring_ms"]) for k in range(count))
    return {**p, "period_ms": period, "length_ms": segments[-1][1], "segments": segments,
            "hits": tuple(rng.uniform(0.85, 1.0, count))}  # a clock: nearly equal hits
