"""One name and one signature per operation across devices (issue 25, item 2), checked on the
source (no GPU, no numba-cuda needed): every public function of a netcli/ops/cuda/<op>.py whose
netcli/ops/cpu/<op>.py has a function of the same name takes the same parameters, in the same
order. A CUDA module without a CPU namesake is one of the device's own helpers listed here, and a
public CUDA function without a CPU namesake in a paired module is one of the device-only
additions listed here: a new op or function cannot diverge silently."""
import ast
import os

import pytest

OPS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "netcli", "ops")

# CUDA modules with no CPU counterpart: the device's own machinery
CUDA_HELPERS = {"launch", "gemm", "reductions", "activations"}

# public functions of a paired CUDA module that the CPU module does not have
DEVICE_ONLY = {
    "conv2d": {"conv2d_forward_relu"},                      # the forward with a fused ReLU
    "inner_product": {"inner_product_forward_relu"},        # the forward with a fused ReLU
    "im2col": {"bias_act", "cols_to_nchw", "nchw_to_cols"},  # the device convolution's layout moves
    "softmax": {"softmax_forward", "softmax_backward",      # the CPU's Softmax is NumPy in layers/common.py
                "softmax_loss_results"},                    # the CPU's return values from the device's rows
}
FUSED = "_relu"          # a fused form takes its op's parameters, then `slope`


def _functions(path):
    """{name: [parameter names]} of the module's public top-level functions."""
    with open(path) as f:
        tree = ast.parse(f.read())
    return {node.name: [a.arg for a in node.args.posonlyargs + node.args.args + node.args.kwonlyargs]
            for node in tree.body if isinstance(node, ast.FunctionDef) and not node.name.startswith("_")}


def _modules(device):
    folder = os.path.join(OPS, device)
    return {n[:-3] for n in os.listdir(folder) if n.endswith(".py") and n != "__init__.py"}


def test_every_cuda_module_is_an_op_or_a_listed_helper():
    cuda, cpu = _modules("cuda"), _modules("cpu")
    helpers = cuda - cpu
    assert helpers == CUDA_HELPERS, (f"CUDA modules without a CPU namesake: {sorted(helpers)}; an op module "
                                     f"takes its CPU module's name, a helper is listed in CUDA_HELPERS")
    assert set(DEVICE_ONLY) <= cuda & cpu


@pytest.mark.parametrize("module", sorted(_modules("cuda") - CUDA_HELPERS))
def test_a_cuda_op_has_the_cpu_ops_names_and_parameters(module):
    cuda = _functions(os.path.join(OPS, "cuda", module + ".py"))
    cpu = _functions(os.path.join(OPS, "cpu", module + ".py"))
    extra = DEVICE_ONLY.get(module, set())
    assert extra <= set(cuda), f"listed but gone: {sorted(extra - set(cuda))}"
    shared = set(cuda) & set(cpu)
    assert shared, f"ops/cuda/{module}.py shares no function with ops/cpu/{module}.py"
    for name in sorted(set(cuda) - extra):
        assert name in cpu, (f"ops/cuda/{module}.py: {name} has no namesake in ops/cpu/{module}.py (give it the "
                             f"CPU op's name, or list it in DEVICE_ONLY)")
        assert cuda[name] == cpu[name], f"{module}.{name}: CUDA {cuda[name]} != CPU {cpu[name]}"
    for name in sorted(extra):
        if name.endswith("_forward" + FUSED):
            base = name[:-len(FUSED)]
            assert cuda[name] == cuda[base] + ["slope"], f"{module}.{name} is not {base}'s parameters + slope"


def test_the_ops_of_issue_25_exist_on_both_devices():
    """The operations the issue names, on the CPU and on the device, with one signature."""
    for module, names in {"conv2d": ["conv2d_workspace", "conv2d_forward", "conv2d_backward"],
                          "inner_product": ["inner_product_forward", "inner_product_backward"],
                          "pool": ["maxpool_forward", "maxpool_backward", "avepool_forward", "avepool_backward"],
                          "softmax": ["softmax_loss_forward", "softmax_loss_backward"],
                          "dropout": ["dropout_forward", "dropout_backward"]}.items():
        cuda = _functions(os.path.join(OPS, "cuda", module + ".py"))
        cpu = _functions(os.path.join(OPS, "cpu", module + ".py"))
        for name in names:
            assert name in cuda and cuda[name] == cpu[name], f"{module}.{name}"
