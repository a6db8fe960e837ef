"""Complexity: parameters, MACs (own counter + DeepSpeed), throughput, peak memory.

- :mod:`~sedlib.complexity.profile`: ``profile_model`` / ``profile_models``, tables.
- :mod:`~sedlib.complexity.macs`: ``count_macs``, ``deepspeed_macs``.
- :mod:`~sedlib.complexity.memory`: peak resident memory.

May import: ``sedlib.config``, ``sedlib.errors``, ``sedlib.audio``, ``sedlib.models``,
``sedlib.registry``.
"""

from sedlib._exports import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "profile_model": ".profile", "profile_models": ".profile", "count_params": ".profile",
    "measure_throughput": ".profile", "format_table": ".profile", "count_macs": ".macs",
    "deepspeed_macs": ".macs",
})
