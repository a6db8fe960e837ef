"""Suite-wide settings. Under pytest-xdist (``make test``: two workers on two cores) each worker,
and every notebook kernel or process it starts, computes on one thread: two workers with two
threads each would share the two cores four ways."""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    import torch

    torch.set_num_threads(1)
