"""Data: labels, file formats, data sources and the embedded synthetic set.

- :mod:`~sedlib.data.labels`: class vocabularies (AudioSet Strong / eval / weak, DESED, synth),
  events <-> 40 ms frame targets.
- :mod:`~sedlib.data.formats`: AudioSet Strong TSV, DESED strong/weak TSVs, durations.
- :mod:`~sedlib.data.sources`: ``ClipSource`` (audio + labels -> training items) and the
  embedded ``SynthSource``; :mod:`~sedlib.data.files`: folders of audio, DESED;
  :mod:`~sedlib.data.audioset`: AudioSet Strong/Weak and PaSST-style HDF5;
  :mod:`~sedlib.data.spec`: the ``--data`` grammar (``open_source``);
  :mod:`~sedlib.data.loading`: collation, epochs, the paired strong/weak loader.
- :mod:`~sedlib.data.synth`: the embedded synthetic soundscapes.

May import: ``sedlib.config``, ``sedlib.errors``, ``sedlib.audio``.
"""

from sedlib._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {"open_source": ".spec", "parse_spec": ".spec"})
