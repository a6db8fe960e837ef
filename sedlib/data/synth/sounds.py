"""Procedural sound recipes of the synthetic data set (:mod:`sedlib.data.synth`), one per class.

Each class is a pair of functions in :data:`RECIPES`:

``draw(rng, max_ms) -> params``
    every random choice that shapes the event, all times in integer milliseconds, including
    ``length_ms`` (at most ``max_ms``) and ``segments``: the audible parts as ``(start_ms,
    stop_ms)`` pairs relative to the event start. The rendered event is exactly zero outside
    its segments, so labels (the hull of the segments) are exact by construction.
``render(params, rng, sr) -> (length_ms * sr // 1000,) float64``
    the event at an arbitrary scale (the mixer sets the level); ``rng`` supplies only noise and
    phases, never timing.

Signals are built with vectorised numpy (phase accumulators, FFT filters, a short-time FFT
filter for moving spectra) so a 10 s clip renders in a few milliseconds.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import numpy as np

from sedlib.data.synth import patterns
from sedlib.data.synth.dsp import (
    _VOWELS,
    _colored_noise,
    _envelope,
    _fft_filter,
    _harmonics,
    _loguniform,
    _lorentz,
    _ms,
    _phase,
    _stft_filter,
    _whole,
    samples,
)

Params = dict


# --- the classes (the pattern classes: sedlib.data.synth.patterns) ---------------------------

def _draw_siren(rng, max_ms):
    length = min(_ms(rng, 1.5, 8.0), max_ms)
    return {"length_ms": length, "segments": _whole(length), "centre": _loguniform(rng, 500, 1100),
            "octaves": rng.uniform(0.3, 0.9), "sweep_s": rng.uniform(0.8, 4.0),
            "triangle": bool(rng.integers(2)), "lfo_phase": rng.uniform(0, 2 * np.pi),
            "amps": (1.0, rng.uniform(0.2, 0.6), rng.uniform(0.05, 0.3)),
            "fade_in_ms": _ms(rng, 0.1, 1.0), "fade_out_ms": _ms(rng, 0.1, 1.0)}


def _render_siren(p, rng, sr):
    n = samples(p["length_ms"], sr)
    cycle = (np.arange(n) / sr / p["sweep_s"] + p["lfo_phase"] / (2 * np.pi)) % 1.0
    lfo = 1 - 2 * np.abs(cycle - 0.5) if p["triangle"] else 0.5 - 0.5 * np.cos(2 * np.pi * cycle)
    freq = p["centre"] * 2.0 ** (p["octaves"] * (lfo - 0.5))  # slow sweep up and down
    wave = _harmonics(_phase(freq, n, sr, rng), p["amps"], freq.max(), sr)
    fade = min(p["length_ms"] // 3, 1000)
    return wave * _envelope(n, sr, min(p["fade_in_ms"], fade), min(p["fade_out_ms"], fade), 30.0)


def _draw_chirp(rng, max_ms):
    count = int(rng.integers(3, 13))
    durs = [_ms(rng, 0.03, 0.12) for _ in range(count)]
    gaps = [_ms(rng, 0.02, 0.12) for _ in range(count - 1)] + [0]
    segments, t = [], 0
    for d, g in zip(durs, gaps):
        if t + d > max_ms:
            break
        segments.append((t, t + d))
        t += d + g
    return {"length_ms": segments[-1][1], "segments": tuple(segments),
            "f_start": _loguniform(rng, 2500, 7000), "f_end": _loguniform(rng, 1500, 5000),
            "jitter": tuple(rng.uniform(0.95, 1.05, len(segments))),
            "trill_hz": rng.uniform(25, 60), "trill_depth": rng.uniform(0.0, 0.08)}


def _render_chirp(p, rng, sr):
    out = np.zeros(samples(p["length_ms"], sr))
    for (a, b), jit in zip(p["segments"], p["jitter"]):
        n = samples(b - a, sr)
        u = np.arange(n) / n
        freq = jit * p["f_start"] * (p["f_end"] / p["f_start"]) ** u  # fast exponential sweep
        freq = np.minimum(freq * (1 + p["trill_depth"] * np.sin(2 * np.pi * p["trill_hz"] * u * n / sr)),
                          0.45 * sr)
        chirp = _harmonics(_phase(freq, n, sr, rng), (1.0, 0.15), freq.max(), sr)
        out[samples(a, sr):samples(a, sr) + n] = chirp * np.sin(np.pi * (np.arange(n) + 0.5) / n)
    return out


def _draw_noise_burst(rng, max_ms):
    length = min(_ms(rng, 0.15, 2.0), max_ms)
    low = _loguniform(rng, 100, 2500)
    return {"length_ms": length, "segments": _whole(length), "low_hz": low,
            "high_hz": min(low * _loguniform(rng, 2, 16), 7500), "tilt": rng.uniform(0, 1.5),
            "attack_ms": _ms(rng, 0.002, 0.03), "release_ms": _ms(rng, 0.005, 0.2)}


def _render_noise_burst(p, rng, sr):
    n = samples(p["length_ms"], sr)

    def band(f):  # 4th-order band-pass skirts, 1/f^tilt colour
        f = np.maximum(f, 1.0)
        skirts = (1 + (p["low_hz"] / f) ** 8) * (1 + (f / p["high_hz"]) ** 8)
        return (f / 1000) ** (-p["tilt"] / 2) / np.sqrt(skirts)

    return _colored_noise(rng, n, sr, band) * _envelope(n, sr, p["attack_ms"], p["release_ms"])


def _draw_whoosh(rng, max_ms):
    length = min(_ms(rng, 0.4, 2.0), max_ms)
    low, high = _loguniform(rng, 250, 1000), _loguniform(rng, 1500, 5000)
    rising = bool(rng.integers(2))
    return {"length_ms": length, "segments": _whole(length), "f_from": low if rising else high,
            "f_to": high if rising else low, "octaves": rng.uniform(0.5, 1.5),
            "fade_in_ms": int(length * rng.uniform(0.25, 0.45)),
            "fade_out_ms": int(length * rng.uniform(0.25, 0.45))}


def _render_whoosh(p, rng, sr):
    n = samples(p["length_ms"], sr)
    dur = p["length_ms"] / 1000

    def gain(t, f):  # a band one `octaves` wide gliding from f_from to f_to
        centre = p["f_from"] * (p["f_to"] / p["f_from"]) ** np.clip(t / dur, 0, 1)
        return np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / centre) / (p["octaves"] / 2)) ** 2)

    env = _envelope(n, sr, p["fade_in_ms"], p["fade_out_ms"], 30.0)
    return _stft_filter(rng.standard_normal(n), sr, gain) * env


def _draw_engine(rng, max_ms):
    length = min(_ms(rng, 2.0, 9.0), max_ms)
    return {"length_ms": length, "segments": _whole(length), "f0": _loguniform(rng, 25, 70),
            "revs": tuple(rng.uniform(-0.08, 0.08, 12)), "am_hz": rng.uniform(4, 15),
            "am_depth": rng.uniform(0.2, 0.6), "cutoff_hz": _loguniform(rng, 250, 1000),
            "rumble": rng.uniform(0.1, 0.4), "fade_in_ms": _ms(rng, 0.3, 1.5),
            "fade_out_ms": _ms(rng, 0.3, 1.5)}


def _render_engine(p, rng, sr):
    n = samples(p["length_ms"], sr)
    t = np.arange(n) / sr
    revs = np.interp(t, np.linspace(0, t[-1], len(p["revs"])), p["revs"])  # slow rev changes
    saw = (_phase(p["f0"] * (1 + revs), n, sr, rng) / (2 * np.pi)) % 1.0 * 2 - 1  # all harmonics
    x = saw + p["rumble"] * rng.standard_normal(n)
    x = _fft_filter(x, sr, lambda f: 1 / np.sqrt(
        (1 + (f / p["cutoff_hz"]) ** 4) * (1 + (20 / np.maximum(f, 1.0)) ** 4)))  # 20 Hz..cutoff
    am = 1 - p["am_depth"] * (0.5 + 0.5 * np.sin(2 * np.pi * p["am_hz"] * t + rng.uniform(0, 6.3)))
    fade = p["length_ms"] // 3
    return x * am * _envelope(n, sr, min(p["fade_in_ms"], fade), min(p["fade_out_ms"], fade), 30.0)


def _draw_chord(rng, max_ms):
    length = min(_ms(rng, 0.4, 3.0), max_ms)
    shapes = ((0, 4, 7), (0, 3, 7), (0, 5, 7), (0, 4, 7, 11), (0, 3, 7, 10))
    root = int(rng.integers(45, 70))  # MIDI note
    notes = shapes[rng.integers(len(shapes))]
    return {"length_ms": length, "segments": _whole(length),
            "freqs": tuple(440 * 2 ** ((root + k - 69) / 12 + rng.uniform(-0.003, 0.003))  # detuned
                           for k in notes),
            "rolloff": rng.uniform(1.0, 2.0), "harmonics": int(rng.integers(3, 6)),
            "pluck": bool(rng.integers(2)), "decay": rng.uniform(0.5, 1.5),
            "attack_ms": _ms(rng, 0.005, 0.08), "release_ms": _ms(rng, 0.05, 0.2)}


def _render_chord(p, rng, sr):
    n = samples(p["length_ms"], sr)
    amps = tuple(h ** -p["rolloff"] for h in range(1, p["harmonics"] + 1))
    x = sum(_harmonics(_phase(f, n, sr, rng), amps, f, sr) for f in p["freqs"])
    env = _envelope(n, sr, p["attack_ms"], p["release_ms"])
    if p["pluck"]:  # piano-like decay, at most ~17 dB down at the end (still audible)
        env *= np.exp(-np.arange(n) / (p["decay"] * n))
    return x * env


def _draw_babble(rng, max_ms):
    length = min(_ms(rng, 0.8, 4.0), max_ms)
    bounds = [0]
    while bounds[-1] < length:
        bounds.append(bounds[-1] + _ms(rng, 0.12, 0.3))
    bounds[-1] = length
    k = len(bounds) - 1
    return {"length_ms": length, "segments": _whole(length), "syllables": tuple(bounds),
            "vowels": tuple(int(v) for v in rng.integers(len(_VOWELS), size=k)),
            "accents": tuple(rng.uniform(-2, 3, k)), "f0": _loguniform(rng, 90, 240),
            "declination": rng.uniform(0, 0.2), "scale": rng.uniform(0.9, 1.15)}


def _render_babble(p, rng, sr):
    n = samples(p["length_ms"], sr)
    t = np.arange(n) / sr
    bounds = np.asarray(p["syllables"]) / 1000
    centres = 0.5 * (bounds[1:] + bounds[:-1])
    pitch = np.interp(t, centres, p["accents"])  # semitones: intonation per syllable
    f0 = p["f0"] * (1 - p["declination"] * t / t[-1]) * 2 ** (pitch / 12)
    f0 *= 1 + 0.01 * np.repeat(rng.standard_normal(n // 80 + 1), 80)[:n]  # jitter
    x = ((_phase(f0, n, sr, rng) / (2 * np.pi)) % 1.0 * 2 - 1) + 0.05 * rng.standard_normal(n)
    formants = _VOWELS[list(p["vowels"])] * p["scale"]  # (syllables, 2)

    def gain(tt, f):  # formants glide between the vowel targets of successive syllables
        f1 = np.interp(tt, centres, formants[:, 0])
        f2 = np.interp(tt, centres, formants[:, 1])
        return (_lorentz(f, f1, 90) + 0.7 * _lorentz(f, f2, 130)
                + 0.3 * _lorentz(f, 2600 * p["scale"], 220)) / (1 + f / 3000)

    u = np.clip(np.interp(t, bounds, np.arange(len(bounds))), 0, len(bounds) - 1) % 1.0
    syllable_am = 0.15 + 0.85 * np.sin(np.pi * u) ** 0.7  # never silent: one segment
    return _stft_filter(x, sr, gain) * syllable_am * _envelope(n, sr, 20, 30)


def _draw_whistle(rng, max_ms):
    length = min(_ms(rng, 0.3, 2.5), max_ms)
    notes = int(rng.integers(1, 4))
    return {"length_ms": length, "segments": _whole(length),
            "pitches": tuple(_loguniform(rng, 900, 2800) for _ in range(notes)),
            "glide_ms": _ms(rng, 0.04, 0.12), "vibrato_hz": rng.uniform(4, 7),
            "vibrato": rng.uniform(0.005, 0.025), "breath": rng.uniform(0.005, 0.03),
            "attack_ms": _ms(rng, 0.03, 0.1), "release_ms": _ms(rng, 0.05, 0.2)}


def _render_whistle(p, rng, sr):
    n = samples(p["length_ms"], sr)
    t = np.arange(n) / sr
    k = len(p["pitches"])
    edges = np.linspace(0, t[-1], k + 1)
    glide = min(p["glide_ms"] / 2000, t[-1] / k / 3)
    knots = np.sort(np.concatenate([[0.0, t[-1]], edges[1:-1] - glide, edges[1:-1] + glide]))
    values = np.repeat(np.log(p["pitches"]), 2)  # legato notes joined by short glides
    freq = np.exp(np.interp(t, knots, values))
    freq *= 1 + p["vibrato"] * np.sin(2 * np.pi * p["vibrato_hz"] * t)
    breath = np.diff(rng.standard_normal(n + 1))  # high-passed noise
    x = np.sin(_phase(freq, n, sr, rng)) + p["breath"] * breath
    return x * _envelope(n, sr, p["attack_ms"], p["release_ms"])


class Recipe(NamedTuple):
    draw: Callable[[np.random.Generator, int], Params]
    render: Callable[[Params, np.random.Generator, int], np.ndarray]


RECIPES: dict[str, Recipe] = {
    "alarm": Recipe(patterns.draw_alarm, patterns.render_alarm),
    "babble": Recipe(_draw_babble, _render_babble),
    "beep": Recipe(patterns.draw_beep, patterns.render_beep),
    "chirp": Recipe(_draw_chirp, _render_chirp),
    "chord": Recipe(_draw_chord, _render_chord),
    "engine": Recipe(_draw_engine, _render_engine),
    "knock": Recipe(patterns.draw_knock, patterns.render_hits),
    "noise_burst": Recipe(_draw_noise_burst, _render_noise_burst),
    "ringtone": Recipe(patterns.draw_ringtone, patterns.render_ringtone),
    "siren": Recipe(_draw_siren, _render_siren),
    "ticking": Recipe(patterns.draw_ticking, patterns.render_hits),
    "whistle": Recipe(_draw_whistle, _render_whistle),
    "whoosh": Recipe(_draw_whoosh, _render_whoosh),
}


# --- backgrounds --------------------------------------------------------------------------------

BACKGROUNDS: tuple[str, ...] = ("noise", "hum", "quiet")


def draw_background(rng: np.random.Generator) -> Params:
    kind = BACKGROUNDS[rng.choice(3, p=[0.6, 0.2, 0.2])]
    return {"kind": kind, "tilt": rng.uniform(0, 2), "mains_hz": (50.0, 60.0)[rng.integers(2)],
            "hum_amps": tuple(rng.uniform(0, 1, 8) / np.arange(1, 9)),
            "drift_db": tuple(rng.uniform(-3, 3, 6))}


def render_background(p: Params, rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Unit-RMS background: 1/f^tilt noise (white 0, pink 1, brown 2) with a slow level drift,
    mains hum with harmonics over faint noise, or near silence (-35 dB faint pink noise)."""
    tilt = 1.0 if p["kind"] == "quiet" else p["tilt"]
    noise = _colored_noise(rng, n, sr, lambda f: np.maximum(f, 20.0) ** (-tilt / 2))
    noise /= np.sqrt(np.mean(noise ** 2)) + 1e-12
    if p["kind"] == "noise":
        gains = 10 ** (np.asarray(p["drift_db"]) / 20)
        return noise * np.interp(np.arange(n), np.linspace(0, n, len(gains)), gains)
    if p["kind"] == "quiet":
        return noise * 10 ** (-35 / 20)
    tile = sr // int(np.gcd(sr, int(p["mains_hz"])))  # samples of a whole number of periods
    period = _harmonics(_phase(p["mains_hz"], tile, sr, rng), p["hum_amps"], p["mains_hz"], sr)
    hum = np.tile(period, -(-n // tile))[:n]  # a steady hum is periodic: compute one tile
    hum /= np.sqrt(np.mean(hum ** 2)) + 1e-12
    return (hum + 0.2 * noise) / np.sqrt(1.04)
