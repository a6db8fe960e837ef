"""The embedded synthetic data set: deterministic 10 s soundscapes with exact strong labels,
made on the fly from a seed (no download).

- :mod:`~sedlib.data.synth.soundscape`: ``SynthConfig``, scene planning and mixing,
  ``synthesize_clip``, ``SynthDataset``, ``write_desed``.
- :mod:`~sedlib.data.synth.sounds`: one draw/render recipe per class, backgrounds.
- :mod:`~sedlib.data.synth.patterns`: the classes named by their temporal pattern (alarm,
  ringtone, ticking) and the single sounds they repeat (beep, knock).
- :mod:`~sedlib.data.synth.dsp`: envelopes, oscillators, filters the recipes share.
- :mod:`~sedlib.data.synth.label_noise`: ``LabelNoise``, documented annotation errors for
  training labels.

May import: ``sedlib.config``, ``sedlib.errors``, ``sedlib.data.labels``, ``sedlib.data.formats``.
"""

from sedlib._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    name: ".soundscape" for name in (
        "SynthConfig", "SynthDataset", "synthesize_clip", "synthesize_stems", "synth_events",
        "synth_vocabulary", "synth_filename", "write_desed", "SYNTH_CLASSES", "SPLITS")
} | {"LabelNoise": ".label_noise", "CONFUSABLE": ".label_noise"})
