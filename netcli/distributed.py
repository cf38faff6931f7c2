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
  sums the K slices by the executor's own pairwise tree (kernels.update.combine_shares), and the sums are gathered back (MPI_Allgather):
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

from .errors import NetcliError
from .kernels.update import combine_shares

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
