"""Progress bars: ``tqdm`` widgets in a live notebook, plain text elsewhere.

A notebook executed by ``sedlib study`` (papermill) is read later as a static file, where a
tqdm widget is left as its text repr (``0/64``) or, untrusted, as nothing at all. The runner
sets ``SEDLIB_PROGRESS=text`` for its kernels, so their bars are written as text and the saved
output shows the final count and time.
"""

from __future__ import annotations

import os
from typing import Any

PROGRESS_ENV = "SEDLIB_PROGRESS"  # "text": plain text bars even inside a Jupyter kernel


def tqdm(*args: Any, **kwargs: Any):
    """``tqdm.auto.tqdm`` (a widget in JupyterLab), or the text ``tqdm`` under ``SEDLIB_PROGRESS=text``."""
    if os.environ.get(PROGRESS_ENV) == "text":
        from tqdm.std import tqdm as bar
    else:
        from tqdm.auto import tqdm as bar
    return bar(*args, **kwargs)
