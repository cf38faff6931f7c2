"""AdamW's CUDA kernel (compiled from the same formula) against its CPU loop, under the simulator."""
import pytest

from test_gpu_kernels import check_rule_on_device


@pytest.mark.parametrize("steps", [1, 3])
def test_adamw_on_the_device_matches_the_cpu(steps):
    check_rule_on_device("ADAMW", {"momentum": 0.9, "momentum2": 0.99}, steps=steps)
