"""Annotation noise for the synthetic training labels, as in AudioSet Strong's.

The paper's knowledge distillation helps because the strong training labels are imperfect:
human annotators miss events, place boundaries loosely and confuse similar sounds, while a
teacher trained on much more data gives smoother, often better, targets. The synthetic set's
labels are exact by construction; :class:`LabelNoise` makes a documented amount of each kind
of error in the *annotations* of training clips (the audio is unchanged; validation and eval
labels stay exact):

* ``miss_rate``: each event's annotation is dropped with this probability.
* ``confusion_rate``: each remaining event of a class in :data:`CONFUSABLE` is annotated as its
  partner with this probability (an alarm is a repeated beep, a ringtone a beep rung in pairs;
  a siren and a whistle are both moving tones; a knock and a noise burst are both short
  broadband transients, and ticking is a regularly repeated knock). Events of the other classes
  keep their label. In the ``context2`` world only sounds that are alike are confused
  (:data:`SOUND_CONFUSABLE`: siren / whistle, knock / noise_burst), not a pattern with its
  part: every pattern there shows its identifying parts inside the clip, and an annotator who
  hears three regular beeps does not write "beep" (measured with the context world: those
  confusions put a lone beep's frame ranking against alarm and ringtone tones below chance,
  AUC 34 vs 50 with exact labels; README "The embedded data set").
* ``boundary_jitter_ms``: onset and offset of each remaining event move by independent
  Gaussian offsets with this standard deviation (rounded to whole milliseconds), clipped to the
  clip, keeping at least ``MIN_EVENT_MS``.

Draws are per clip from ``SeedSequence(seed, spawn_key=(SALT, index))``: the same clip gets the
same noisy annotation in every process and every epoch (annotations are fixed, as a data set's
are), independent of the clip's audio stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sedlib.data.labels import Event

SALT = 0x4E4F4953  # "NOIS"
MIN_EVENT_MS = 10
CONFUSABLE: dict[str, str] = {"alarm": "beep", "beep": "alarm", "siren": "whistle",
                              "whistle": "siren", "knock": "noise_burst", "noise_burst": "knock",
                              "ringtone": "alarm", "ticking": "knock"}
#: confusions between sounds that are alike (no pattern with its part): the context2 world's
SOUND_CONFUSABLE: dict[str, str] = {"siren": "whistle", "whistle": "siren",
                                    "knock": "noise_burst", "noise_burst": "knock"}
#: the confusable pairs of each synthetic world (default: :data:`CONFUSABLE`)
WORLD_CONFUSABLE: dict[str, dict[str, str]] = {"context2": SOUND_CONFUSABLE}


@dataclass(frozen=True)
class LabelNoise:
    """Rates of the annotation errors (module doc); all zero: exact labels."""

    miss_rate: float = 0.0
    confusion_rate: float = 0.0
    boundary_jitter_ms: float = 0.0

    def __post_init__(self) -> None:
        for name in ("miss_rate", "confusion_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"LabelNoise: {name} must be in [0, 1], got {value}")
        if not self.boundary_jitter_ms >= 0:
            raise ValueError(f"LabelNoise: boundary_jitter_ms must be >= 0, got "
                             f"{self.boundary_jitter_ms}")

    @property
    def active(self) -> bool:
        return bool(self.miss_rate or self.confusion_rate or self.boundary_jitter_ms)

    def apply(self, events: list[Event], *, seed: int, index: int, clip_seconds: float,
              confusable: dict[str, str] = CONFUSABLE) -> list[Event]:
        """The annotation of clip ``index``: ``events`` (exact) with this noise, sorted by
        (onset, offset, label). Times stay on the millisecond grid. ``confusable``: which label
        an event of each confusable class is mistaken for (the world's pairs)."""
        if not self.active:
            return list(events)
        kept = [e for e in self.annotate(events, seed=seed, index=index, clip_seconds=clip_seconds,
                                         confusable=confusable) if e is not None]
        return sorted(kept, key=lambda e: (e.onset, e.offset, e.label))

    def annotate(self, events: list[Event], *, seed: int, index: int, clip_seconds: float,
                 confusable: dict[str, str] = CONFUSABLE) -> list[Event | None]:
        """Each of ``events`` as annotated, in their order (None: missed)."""
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(SALT, int(index))))
        clip_ms = int(round(clip_seconds * 1000))
        out: list[Event | None] = []
        for e in events:
            # every event draws the same four numbers, so one event's fate never shifts another's
            missed, confused, (d_on, d_off) = rng.random(), rng.random(), rng.normal(size=2)
            if missed < self.miss_rate:
                out.append(None)
                continue
            label = confusable.get(e.label, e.label) if confused < self.confusion_rate else e.label
            on, off = round(e.onset * 1000), round(e.offset * 1000)
            if self.boundary_jitter_ms:
                on = min(max(0, on + round(d_on * self.boundary_jitter_ms)), clip_ms - MIN_EVENT_MS)
                off = max(min(clip_ms, off + round(d_off * self.boundary_jitter_ms)), on + MIN_EVENT_MS)
            out.append(Event(e.filename, on / 1000, off / 1000, label))
        return out
