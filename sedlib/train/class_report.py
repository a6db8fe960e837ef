"""Per-class diagnosis of a trained model: PSDS1 per class at several median-filter windows and
frame-level ROC AUC per class, from one pass over the data.

Why both: PSDS1 scores detected events (threshold, median filter, DTC/GTC 0.7 matching); frame
AUC scores the raw frame ranking. A class with a high frame AUC and a low PSDS1 is lost in
post-processing or boundaries (e.g. events shorter than the median window); one with a low
frame AUC has not been learned. Used by ``scripts/diagnose_world.py`` and the teacher table.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch

from sedlib.config import AudioConfig


@torch.no_grad()
def class_report(model: torch.nn.Module, dataset: torch.utils.data.Dataset, *,
                 audio_config: AudioConfig | None = None, median_windows: Sequence[int] = (9,),
                 batch_size: int = 16, folds: int = 0) -> dict[str, Any]:
    """Score ``model`` (eval mode, CPU) on ``dataset`` (strong labels: items ``waveform``,
    ``targets`` (K, T), ``filename``).

    Returns ``{"classes": [K names], "frame_auc": {class: AUC in [0, 1]},
    "psds": {window: psds_of(...) dict}}``: for each median window (in output frames) the
    PSDS1, PSDS1 macro and per-class PSDS1 of :func:`sedlib.train.data.psds_of` (with ``folds``).
    """
    from sedlib.audio.frontend import MelFrontend
    from sedlib.evaluate.frame_auc import frame_auc
    from sedlib.evaluate.postprocess import median_filter
    from sedlib.train.data import dataset_vocab, psds_of

    audio = audio_config or AudioConfig()
    vocab = dataset_vocab(dataset, "validation")
    frontend = MelFrontend(audio).eval()
    model = model.eval()
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    logits: dict[str, np.ndarray] = {}
    frames: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    for batch in loader:
        out = model(frontend(batch["waveform"]))[0].float().numpy()  # (B, K, T_out)
        target = batch["targets"].numpy()  # (B, K, T)
        t = min(out.shape[-1], target.shape[-1])
        frames.append(out[..., :t])
        labels.append(target[..., :t])
        logits.update(zip(batch["filename"], out))
    auc = frame_auc(np.concatenate(frames), np.concatenate(labels))
    psds = {}
    for window in median_windows:
        filtered = {name: median_filter(s[None], window)[0] for name, s in logits.items()}
        psds[int(window)] = psds_of(filtered, dataset, vocab, audio, folds=folds)
    return {"classes": list(vocab.names), "frame_auc": dict(zip(vocab.names, map(float, auc))), "psds": psds}
