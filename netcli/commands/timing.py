"""`netcli time`: a net's forward and backward passes timed, whole and per layer."""
from __future__ import annotations

import time

import numpy as np

from ..errors import NetcliError
from ..exec.team import near_held
from ..net import Net
from .score import _noop


def benchmark(model, iterations=50, phase="TRAIN", echo=None, group=None, stages=(), level=0, gpu=None):
    """Per-layer forward/backward times in ms, as `caffe time` (one warm-up pass first, so JIT
    compilation is reported apart). With a process group (mpiexec), the batch is split as in
    training, every process times its part, and rank 0 reports the slowest process's times and
    the gradient reduction's (communication) time per iteration. On a GPU (`gpu`): per-layer
    times between CUDA events, kernel launches per layer, and host<->device copies."""
    from ..exec import device_of
    from ..exec.threads import describe
    from ..ops.compiles import KernelCompiles
    echo = echo if group is None or group.rank == 0 else None
    echo = echo or _noop
    t0 = time.perf_counter()
    if group is not None and phase != "TRAIN":
        raise NetcliError("netcli time under mpiexec times the TRAIN phase (the split of training)")
    net = Net(model, phase=phase, stages=stages, level=level, device=device_of(gpu, group),
              release_rows=phase == "TRAIN" and "auto")     # as the Solver builds its TRAIN net
    if group is not None:
        net.executor.distribute(group)
    device = net.device != "cpu"
    setup_s = time.perf_counter() - t0
    echo(f"GPU {gpu}: {net.executor.device}" if device else f"Threads: {describe()}")
    echo("Performing Forward")
    with KernelCompiles(echo) as compiles:    # said when kernels compile: the warm-up, or time_layers' own first pass
        t0 = time.perf_counter()
        net.forward()
        echo(f"Initial loss: {net.loss:.6g}")
        echo("Performing Backward")
        net.clear_param_diffs()
        net.backward()
        warm_s = time.perf_counter() - t0
        echo(f"First forward-backward (includes kernel compilation or cache load): {warm_s * 1000:.1f} ms.")
        compiles.report()
        echo("*** Benchmark begins ***")
        echo(f"Testing for {iterations} iterations.")
        fwd, bwd, total, counts = time_layers(net, iterations, echo)
    echo("Average time per layer: ")
    algorithms = [None if device else _algorithm(layer) for layer in net.layers]
    for i, name in enumerate(net.layer_names):
        for word, ms, k in (("forward", fwd, 0), ("backward", bwd, 1)):   # Caffe's row, then ours
            extra = (f" ({counts[k][i][0]:.3g} launches, {counts[k][i][1]:.3g} copies)" if device else
                     "" if algorithms[i] is None else f" [{algorithms[i]}]")
            echo(f"{name:>10}\t{word}: {ms[i]:.5g} ms.{extra}")
    from ..data.prefetch import waited
    compute = comm = 0.0
    if device:
        counts0 = net.executor.counters()
    wait0 = waited(net)
    for _ in range(iterations):
        t0 = time.perf_counter()
        net.clear_param_diffs()
        net.forward_backward()
        net.executor.synchronize()
        t1 = time.perf_counter()
        if group is not None:
            group.reduce_grads(net.param_diff)
        compute, comm = compute + t1 - t0, comm + time.perf_counter() - t1
    as_trained = compute / iterations * 1000
    wait_ms = [(waited(net) - wait0) / iterations * 1000]
    if group is not None:        # the slowest process sets the pace
        wait_ms = group.allgather(wait_ms[0])
        as_trained, comm = (max(v) for v in zip(*group.allgather((as_trained, comm / iterations * 1000))))
        fwd, bwd = (np.max(group.allgather(a), axis=0) for a in (fwd, bwd))
        total = max(group.allgather(total))
    result = {
        "as_trained_ms": as_trained,
        "layers": [{"name": n, "type": l.type, "forward_ms": float(f), "backward_ms": float(b),
                    **({} if a is None else {"algorithm": a})}
                   for n, l, f, b, a in zip(net.layer_names, net.layers, fwd, bwd, algorithms)],
        "forward_ms": float(fwd.sum()), "backward_ms": float(bwd.sum()),
        "forward_backward_ms": total / iterations * 1000, "total_ms": total * 1000,
        "iterations": iterations, "setup_s": setup_s, "first_pass_s": warm_s, "threads": describe(),
        "data_wait_ms": max(wait_ms), "data_wait_ms_by_rank": wait_ms,
    }
    if device:
        ex = net.executor
        launches, copies, copy_s = ((a - b) / iterations for a, b in zip(ex.counters(), counts0))
        copy_ms = copy_s * 1000
        result["layers"] = [dict(r, forward_launches=counts[0][i][0], backward_launches=counts[1][i][0],
                                 forward_copies=counts[0][i][1], backward_copies=counts[1][i][1])
                            for i, r in enumerate(result["layers"])]
        result.update(gpu=gpu, device=ex.device, launches_per_iteration=launches + 1,
                      copies_per_iteration=copies, copy_ms=copy_ms, threads=None,
                      timing="wall clock of the CUDA simulator (not a GPU's times)" if "simulated" in ex.device
                      else "CUDA events")
        echo(f"Kernel launches per training iteration: {launches + 1:.4g} (forward, backward, clearing the "
             "gradients, and the update rule's 1)")
        echo(f"Host<->device copies per iteration: {copies:.3g}, {copy_ms:.4g} ms (the inputs, the loss, and "
             "the layers on the host)")
        echo(f"Layer times: {result['timing']}")
    echo(f"Average Forward pass: {result['forward_ms']:.5g} ms.")
    echo(f"Average Backward pass: {result['backward_ms']:.5g} ms.")
    echo(f"Average Forward-Backward: {result['forward_backward_ms']:.5g} ms.")
    echo(f"Total Time: {result['total_ms']:.5g} ms.")
    how = ("the same passes, timed from the host" if device else
           f"training runs per-sample layers in stretches, {net.executor.steps()} step(s)")
    echo(f"Average Forward-Backward as in training (layers one at a time above; {how}): {as_trained:.5g} ms.")
    if net.data_layers():
        echo("Data wait: " + (f"{wait_ms[0]:.4g} ms/iter" if group is None else ", ".join(
            f"rank {r} {ms:.4g} ms/iter" for r, ms in enumerate(wait_ms))) + " (of the Forward-Backward as in training)")
    if group is not None:
        result.update(processes=group.size, reduction=group.reduction, communication_ms=comm,
                      gradient_mb=net.param_diff.nbytes / 2 ** 20)
        echo(f"Processes: {group.size}, each computing its part of the batch of {net.batch_size() or '?'}: "
             f"compute {as_trained:.5g} ms, gradient reduction ({group.reduction}, "
             f"{net.param_diff.nbytes / 2 ** 20:.3g} MB) {comm:.5g} ms per iteration (slowest process).")
    for line in net.executor.plan():
        echo(f"Parallel plan: {line}")
    memory = getattr(net.executor, "memory", None)     # the CPU executor's (netcli/exec/memory_plan.py)
    if memory is not None:
        from ..exec.memory_plan import peak_resident_bytes
        for line in memory.lines():
            echo(line)
        peak = peak_resident_bytes()
        result.update(memory_plan_mb=memory.total / 2 ** 20, peak_resident_mb=peak / 2 ** 20)
        echo(f"Peak resident memory of this process: {peak / 2 ** 20:,.0f} MB (the plan: {memory.total / 2 ** 20:,.0f} MB)")
    echo("*** Benchmark ends ***")
    return result


def _algorithm(layer):
    """The CPU algorithm a layer names through its timing_label() (Convolution's: one of
    netcli.ops.cpu.conv2d_rule.ALGORITHMS), or None."""
    label = getattr(layer, "timing_label", None)
    return label() if label is not None else None


def time_layers(net: Net, iterations, echo=None):
    """Average forward and backward ms of every layer (arrays in net order), the total seconds,
    and per layer the average (launches, copies) on a GPU (zeros on the CPU). One untimed pass of
    the same calls first: the kernels that only a layer run alone calls (a BatchNorm and Scale
    that training fuses, say) compile or load here, not in the first timed iteration (`netcli time`
    on LeNet-BN, 10 iterations, a fresh kernel cache, 2-vCPU Intel Xeon: bn_conv1's forward read
    22 ms and scale_conv2's backward 135 ms; with this pass 0.65 and 0.33 ms). Whether the threads
    help each other in teams is measured once for all passes (exec/team.py's near_held)."""
    L = len(net.layers)
    ms = np.zeros((2, L))
    counts = np.zeros((2, L, 2))        # [forward/backward][layer] -> (launches, copies): the GPU's
    clock = time.perf_counter

    def one_pass(call):
        for i in range(L):
            call(i, 0)
        net.clear_param_diffs()
        for i in reversed(range(L)):
            if net.need_backward[i]:
                call(i, 1)

    def run(i, k):
        s = clock()
        r = net.executor.time_layer(i, forward=k == 0)
        ms[k, i] += (clock() - s) * 1000 if r is None else r[0]
        if r is not None:
            counts[k, i] += r[1:]
    with near_held():           # the teams' helpers in every pass or in none (exec/team.py)
        one_pass(lambda i, k: net.executor.time_layer(i, forward=k == 0))
        total0 = clock()
        for j in range(iterations):
            it0 = clock()
            one_pass(run)
            if echo:
                echo(f"Iteration: {j + 1} forward-backward time: {(clock() - it0) * 1000:.4g} ms.")
        total = clock() - total0
    return ms[0] / iterations, ms[1] / iterations, total, counts / iterations
