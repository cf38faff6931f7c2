"""The GPU kernels' tests run under Numba's CUDA simulator unless NUMBA_ENABLE_CUDASIM is set
otherwise (0 on a machine with a GPU runs them there). Skipped without the numba-cuda extra."""
import os

import pytest

if "NUMBA_ENABLE_CUDASIM" not in os.environ:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
    from numba.core import config
    config.reload_config()           # numba read its settings when it was first imported

pytest.importorskip("numba_cuda")
