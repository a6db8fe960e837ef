"""Training: the paper's recipe (SPEC 5) with exact resume and DDP.

- :mod:`~sedlib.train.fitting`: ``fit()``; :mod:`~sedlib.train.loop`: the ``Trainer``;
  :mod:`~sedlib.train.step`: pieces of one step.
- :mod:`~sedlib.train.config`: ``TrainConfig``, ``DistillConfig``, presets.
- :mod:`~sedlib.train.optim`: layer-wise LR groups, warmup + cosine schedule.
- :mod:`~sedlib.train.augment`: wavmix, frame shift, mixup.
- :mod:`~sedlib.train.kd`: the KD loss; :mod:`~sedlib.train.pseudo_labels`: teacher stores.
- :mod:`~sedlib.train.data`: samplers, validation; :mod:`~sedlib.train.runs`: run folders.

May import: ``sedlib.config``, ``sedlib.errors``, ``sedlib.audio``, ``sedlib.data``,
``sedlib.models``, ``sedlib.registry``, ``sedlib.trained``, ``sedlib.evaluate`` (not
``sedlib.detect``: trained models load through :mod:`sedlib.trained`).
"""

from sedlib._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "fit": ".fitting", "Trainer": ".loop", "RunResult": ".runs", "TrainConfig": ".config",
    "DistillConfig": ".config", "PRESETS": ".config", "validate": ".data",
})
