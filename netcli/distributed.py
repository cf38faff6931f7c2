"""Data-parallel training over MPI: `mpiexec -n K netcli train ...` (or `srun netcli train ...`).

MPI comes from mpi4py, the optional extra `pip install 'netcli[mpi]'` (which also installs an MPI
whose `mpiexec` lands in the environment); a system MPI works as well. A process started without
a launcher, or by one with a single process, never imports it.

Batch semantics: the config's batch_size is the *global* batch, split across the processes (as
the threads split it): the executor's fixed shares of the batch (netcli/exec/cpu.py) are dealt out
in contiguous blocks, rank r taking block r, and each rank's Data layer reads only the samples of
its rows. The shuffled order is one global order from the seed, so the samples and the batches
are the same as in one process, and iter_size, learning rates and snapshots mean what they mean
there.

Parameter gradients: every rank combines its own shares by the executor's fixed pairwise tree,
then the ranks' partial gradients are summed once per pass over the flat gradient buffer, in one of
two ways (`reduction`):
- "exact" (the default): each rank receives one slice of every rank's partial (MPI_Alltoall),
  sums the K slices by the executor's own pairwise tree (ops.cpu.shares.combine_shares), and the sums are gathered back (MPI_Allgather):
  the bandwidth of a ring allreduce, in a fixed order. With K a power of two dividing the number
  of shares, each rank's block of shares is one subtree of the executor's tree, so the weights are
  bit-identical to one process's, whatever K and the thread counts are.
- "mpi": MPI_Allreduce, in the order the MPI library picks (equal to one process's to ~1e-7).
Statistics over the whole batch (BatchNorm's moments, the loss, Accuracy's counts) are exchanged
share by share (MPI_Allgather of the layers' small per-share partials) and combined in share order,
as one process does.

Rank 0 alone logs, tests and writes files; the others keep the same state (the solver's decisions,
e.g. early stopping, are broadcast). An error on any rank prints one line naming the rank and ends
the whole job (MPI_Abort), so no rank waits forever in a collective.
"""
from __future__ import annotations

import hashlib
import os
import sys

import numpy as np

from . import log
from .errors import NetcliError
from .ops.cpu.shares import combine_shares
from .solver.callbacks import Processes

REDUCTIONS = ("exact", "mpi")
# (variable holding the world size, variable holding the rank) of the launchers we know
LAUNCHERS = (("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),      # Open MPI's mpiexec
             ("PMI_SIZE", "PMI_RANK"),                              # MPICH/Hydra, srun --mpi=pmi2
             ("MPI_LOCALNRANKS", "PMI_RANK"),                       # MPICH on one host
             ("SLURM_STEP_NUM_TASKS", "SLURM_PROCID"))              # srun
MISSING = "pip install 'netcli[mpi]'"


def launched_size():
    """How many processes the launcher started (1 when none or no launcher); no MPI import."""
    for size, _ in LAUNCHERS:
        v = os.environ.get(size, "")
        if v.isdigit() and int(v) > 1:
            return int(v)
    return 1


class Group:
    """The processes of one job: rank, size, local size, and the collectives training needs."""

    def __init__(self, reduction="exact"):
        try:
            from mpi4py import MPI
        except ImportError:
            raise NetcliError(f"this is a run of {launched_size()} processes, which needs MPI support: "
                              f"{MISSING}") from None
        if reduction not in REDUCTIONS:
            raise NetcliError(f"reduction must be one of {', '.join(REDUCTIONS)}, got {reduction!r}")
        self.MPI = MPI
        self.comm = MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.local_size = self.comm.Split_type(MPI.COMM_TYPE_SHARED).Get_size()
        self.reduction = reduction
        self._buffers = {}

    # -- the split of a batch ------------------------------------------------------------------
    def callback(self):
        """The solver callback that distributes a Solver's training over this group."""
        return DataParallel(self)

    def block(self, count):
        """This rank's contiguous block [first, stop) of `count` shares."""
        return count * self.rank // self.size, count * (self.rank + 1) // self.size

    def check_shares(self, count, batch):
        """The rule for splitting a batch of `count` shares across the ranks (one line if not)."""
        if count < self.size or (self.reduction == "exact" and (self.size & (self.size - 1) or count % self.size)):
            need = 1 << (self.size - 1).bit_length()
            how = (f"a power-of-two process count that divides them (got {self.size})" if count >= self.size
                   else f"at least one share per process ({self.size} processes)")
            raise NetcliError(f"the TRAIN batch of {batch} is cut into {count} share(s) and the {self.reduction} "
                              f"reduction needs {how}: give --shares {need} to cut it finer (the same --shares "
                              "gives the same weights with any process count, one process included)"
                              + (", or use --reduction mpi" if self.reduction == "exact" and count >= self.size else ""))

    # -- collectives ---------------------------------------------------------------------------
    def exchange(self, workspaces, keys, first, stop):
        """Every rank's per-share partials (workspaces[s][key] for its shares s) to every rank."""
        mine = [[workspaces[s][k] for k in keys] for s in range(first, stop)]
        for lo, parts in self.comm.allgather((first, mine)):
            for s, arrays in enumerate(parts, lo):
                for k, a in zip(keys, arrays):
                    workspaces[s][k][...] = a

    def reduce_grads(self, g):
        """Sum the ranks' partial gradients in g (flat, in place) on every rank."""
        MPI = self.MPI
        if self.reduction == "mpi":
            self.comm.Allreduce(MPI.IN_PLACE, g, op=MPI.SUM)
        else:
            K = self.size
            chunk = -(-g.size // K)
            mpi_type = MPI.FLOAT if g.dtype == np.float32 else MPI.DOUBLE
            flat = g if g.size == K * chunk else self._buffer("flat", K * chunk, g.dtype)
            parts = self._buffer("parts", K * chunk, g.dtype).reshape(K, chunk)
            if flat is not g:
                flat[:g.size] = g
                flat[g.size:] = 0
            self.comm.Alltoall([flat, mpi_type], [parts, mpi_type])    # slice r of every rank's g
            combine_shares(parts[0], parts[1:], 0, chunk)              # the executor's tree, in place
            self.comm.Allgather([parts[0], mpi_type], [flat, mpi_type])
            if flat is not g:
                g[...] = flat[:g.size]

    def _buffer(self, name, size, dtype):
        """A scratch array kept between calls (the gradient's size does not change)."""
        buf = self._buffers.get(name)
        if buf is None or buf.size != size or buf.dtype != dtype:
            buf = self._buffers[name] = np.empty(size, dtype)
        return buf

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def bcast_array(self, a):
        """Rank 0's array `a` in place on every rank."""
        self.comm.Bcast(a, root=0)

    def allgather(self, obj):
        """Every rank's `obj`, in rank order, on every rank."""
        return self.comm.allgather(obj)

    def gather(self, obj):
        """Every rank's `obj`, in rank order, on rank 0 (None on the others)."""
        return self.comm.gather(obj, root=0)

    def allreduce_max(self, value):
        return self.comm.allreduce(value, op=self.MPI.MAX)

    def agree(self, what, digest):
        """Stop with one line when the ranks' digests of `what` differ (different files on
        different hosts)."""
        digests = self.comm.allgather(digest)
        odd = [r for r, d in enumerate(digests) if d != digests[0]]
        if odd:
            raise NetcliError(f"the {what} differs between ranks (rank 0 and rank(s) "
                              f"{', '.join(map(str, odd))}): every process must read the same files")

    def abort(self, line, code=1):
        """Print one line naming this rank and end the whole job."""
        from .text import safe_text
        print(safe_text(f"netcli: rank {self.rank} of {self.size}: {line}"), file=sys.stderr, flush=True)
        self.comm.Abort(code)


class DataParallel(Processes):
    """The Solver's side of a run over several processes (Caffe's P2PSync, a Solver callback):
    one seed, the batch split and checked, the gradients summed after every pass, rank 0 alone
    logging, testing and writing (its test results and early stopping's weights broadcast), and a
    signal acted on by every process at the same iteration."""

    def __init__(self, group):
        self.group = group
        self.root = group.rank == 0

    def on_init(self, solver):
        if not self.root:
            log.silence()
            solver.progress = False
        solver.seed = self.group.bcast(solver.seed)

    def on_setup(self, solver, weights):
        """Split the TRAIN batch across the processes; check they all read the same files."""
        from .config.compile import config_to_dict
        group, net = self.group, solver.net
        net.executor.distribute(group)
        net_text = config_to_dict(solver.net_path) if isinstance(solver.net_path, str) else solver.net_path
        group.agree("solver or net", digest(solver.p.to_dict(), net_text, net.data_size(),
                                             [t.data_size() for t in solver.test_nets]))
        group.agree("initial weights", digest(net.param_data.tobytes()) if weights else "")

    def on_start(self, solver):
        net = solver.net
        g, B = self.group, net.batch_size() or (net.blobs[net.inputs[0]].shape[0] if net.inputs else "?")
        log.info(f"Processes: {g.size}, splitting each batch of {B} (the batch is global: batch_size "
                 f"{B} x iter_size {solver.p.iter_size} samples per update); gradients summed with the "
                 f"{g.reduction} reduction" + (" (bit-identical to one process)" if g.reduction == "exact" else ""))

    def cleared(self, solver, k):
        """Rank 0 carries the earlier passes' sum, the others start each pass from zero, so the sum
        of the ranks' gradients is the one a single process gets."""
        if k and not self.root:
            solver.net.clear_param_diffs()
        return k == 0 or not self.root

    def on_gradients(self, solver):
        self.group.reduce_grads(solver.net.param_diff)

    def agreed_request(self, solver):
        """Every process stops (and snapshots) at the same iteration, whichever caught the signal (a
        scheduler or `pkill` may reach some ranks only, or reach them at different moments); rank 0,
        the one that logs, says which ranks caught it when it did not. solver.request is read once
        and never written here: a signal caught during the exchange counts at the next iteration
        on every process (writing the agreed value back lost it, and the job trained on)."""
        from .solver.hooks import EFFECT_WORDS
        levels = (None, "none", "snapshot", "stop")
        request = levels[self.group.allreduce_max(levels.index(solver.request))]
        if request in ("snapshot", "stop"):       # every rank takes this branch at the same iteration
            caught = self.group.gather(solver.caught)
            if self.root and caught[0] is None:
                ranks = [str(r) for r, name in enumerate(caught) if name]
                names = "/".join(sorted({name for name in caught if name}))
                log.info(f"Caught {names} on rank{'s' if len(ranks) > 1 else ''} {', '.join(ranks)}: "
                         f"{EFFECT_WORDS[request]}")
        return request

    def on_snapshot(self, solver, written):
        """Rank 0 wrote the snapshot; the others keep the same record of snapshots."""
        if not self.root:
            solver.last_snapshot_iter = solver.iter
            solver.snapshots_written.append(solver.iter)

    def from_root(self, compute):
        return self.group.bcast(compute() if self.root else None)

    def on_root(self, write):
        return write() if self.root else None

    def share_params(self, params):
        self.group.bcast_array(params)


def digest(*texts):
    h = hashlib.sha256()
    for t in texts:
        h.update(str(t).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


_group = {"g": None, "made": False}


def current():
    """The Group made by group(), if any (no MPI import)."""
    return _group["g"]


def group(reduction="exact"):
    """The job's Group when started by a launcher with more than one process, else None."""
    if not _group["made"]:
        _group["made"] = True
        if launched_size() > 1:
            _group["g"] = Group(reduction)
    return _group["g"]
