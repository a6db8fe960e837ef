"""Audio in: read any soundfile-readable file, downmix, resample to 16 kHz, cut 10 s windows
(also streaming), and the reference log-mel frontend.

- :mod:`sedlib.audio.io`: ``load_audio``, ``audio_duration``, ``resample``, ``iter_windows``.
- :mod:`sedlib.audio.frontend`: ``MelFrontend``, ``(B, N)`` -> ``(B, 1, 128, T)``.
- :mod:`sedlib.audio.live`: live sources (stdin PCM, a growing WAV, a microphone) and
  ``StreamResampler``.

May import: ``sedlib.config``, ``sedlib.errors``.
"""

from sedlib._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "load_audio": ".io", "audio_duration": ".io", "resample": ".io", "fit_to_length": ".io",
    "iter_windows": ".io", "split_windows": ".io", "num_windows": ".io",
    "MelFrontend": ".frontend", "StreamResampler": ".live", "pcm_source": ".live",
    "growing_wav_source": ".live", "microphone_source": ".live",
})
