"""What a Net, the Solver and the commands ask of an executor: the one interface every backend
implements (netcli/exec/cpu.py: the CPU's shares and threads; netcli/exec/cuda.py: a CUDA device).

A Net makes its executor once, at construction (`Net(..., device="cpu" | "cuda:0")`, through
netcli.exec.make_executor) and again, on the same device, in reshape() and share_weights();
nothing outside the Net assigns one. The host's `net.param_data` / `net.param_diff` are the
params and gradients everyone reads: an executor that keeps them elsewhere (a device) copies them
there and back in push()/pull()/pull_grads(), and is a no-op where they already live.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class Executor(Protocol):
    device: str           # where it runs, in words ("CPU", "NVIDIA H200", "... (simulated)")

    def __init__(self, net, shared=None):
        """Plan and allocate for `net` (its blobs, params and layers set up). shared: the executor
        of the net whose params this one uses (Net.share_weights: a test net on the train net's)."""

    # -- passes (the Net's forward/backward/forward_backward) -------------------------------------
    def forward(self) -> None:
        """Every layer forward; the net's outputs (and loss tops) are on the host when it returns."""

    def forward_from(self, start: int) -> None:
        """Layers start, start+1, ... forward; the blobs earlier layers make are the host's."""

    def backward(self) -> None:
        """Back-propagate from the loss tops; param gradients add to what they hold."""

    def forward_backward(self, cleared: bool = False, step=None) -> None:
        """forward() then backward(); cleared: the param gradients are zero (layers may write them);
        step: an update it may apply as it ends (update_rules.base.Step; setting step.applied)."""

    # -- params and gradients -------------------------------------------------------------------
    def push(self) -> None:
        """The host's params (and the update rule's history) to where the passes read them."""

    def pull(self) -> None:
        """The params (and history) into net.param_data (and the rule's host arrays)."""

    def pull_grads(self) -> None:
        """The param gradients into net.param_diff."""

    def blobs_to_host(self, names, diff: bool = False) -> None:
        """These blobs' data (diff=True: their diffs) as the last pass left them, into the host's
        arrays (pycaffe reads any blob); a no-op where they already live."""

    def diffs_to_device(self, names) -> None:
        """The host's diffs of these blobs to where backward reads them (pycaffe's backward with
        the output diffs given); a no-op where they already live."""

    def clear_param_diffs(self) -> None:
        """Zero the param gradients (once per update)."""

    def grad_sumsq(self) -> float:
        """The sum of the squared param gradients (gradient clipping)."""

    def update(self, rule, rate: float, it: int, scale: float) -> None:
        """One step of an update rule (netcli/update_rules/) on the params where they live."""

    # -- how a pass is cut (netcli train --shares, mpiexec) -----------------------------------------
    def reshare(self, count: int) -> None:
        """Cut each batch into `count` pieces instead of the executor's own choice (--shares); one
        NetcliError line where the executor does not cut batches."""

    def distribute(self, group) -> None:
        """Compute only this process's part of each batch (netcli.distributed.Group: MPI); one
        NetcliError line naming what prevents it."""

    # -- planning and timing (netcli check / time) ------------------------------------------------
    def plan(self) -> list[str]:
        """Lines saying how the net runs (what is split, fused or left on the host)."""

    def steps(self) -> int:
        """How many consecutive pieces a pass runs in (1: the whole net in one piece)."""

    def synchronize(self) -> None:
        """Return once all queued work has finished (timing)."""

    def time_layer(self, i: int, forward: bool):
        """Run layer i alone as training runs it; None (timed by the caller's clock) or
        (ms, launches, copies)."""

    def counters(self) -> tuple[int, int, float]:
        """(kernel launches, host<->device copies, seconds in copies) so far (zeros on the CPU)."""
