"""Running a team's jobs (exec/team.py): the lead's part (run_job) and the helpers' loop (serve),
for every job kind (exec/claims.py's kinds: winograd_team.py's, gemms_team.py's,
channels_team.py's, depthwise_team.py's, pool_team.py's, lrn_team.py's, eltwise_team.py's,
copy_team.py's and direct_team.py's tiles). Both are one compiled function, `_work`, that claims
tiles and runs each through its kind's *entry*: a C function compiled from that kind's tile
function for one dtype (numba.cfunc, cached like every kernel), the first time a job of that
kind and dtype is posted, its address written into the job's record (TILE). So a net compiles
the tiles of the kinds it uses alone, each once (LeNet's first run on a cold cache, 2-vCPU AMD
EPYC: 24 s with every kind's tiles compiled inside `_work`, 15 s with its own alone)."""
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, from_dtype, njit, types
from numba.extending import intrinsic

from ...exec.claims import (CONV, COPY_ROWS, DIRECT_BACKWARD, DIRECT_FORWARD, DW_BACKWARD, DW_FORWARD, IMAGE_GEMMS,
                            ITEMSIZE, KIND, LRN_BACKWARD, LRN_FORWARD, MOMENTS, NHWC_BACKWARD, NHWC_FORWARD,
                            NSR_BACKWARD, NSR_FORWARD, NSR_SUMS, POOL_BACKWARDS, POOL_FORWARDS, RECORD, RELU_BACKWARD,
                            RELU_FORWARD, SUM_RELU_BACKWARD, SUM_RELU_FORWARD, TILE, WEIGHT_GRAD, WEIGHTS, claim,
                            close_job, finish, open_job, posted, stopped)
from . import channels_team, copy_team, depthwise_team, direct_team, eltwise_team, gemms_team, lrn_team, pool_team, \
    winograd_team


@njit(cache=True, nogil=True, inline="always")
def _entry(tile, record_ptr, t, like_ptr):
    """Run tile t of the job at record_ptr with `tile` (record, t, like): 1, or 0 where it raised
    (an allocation that failed: the lead raises once the job ends)."""
    try:
        tile(carray(record_ptr, (RECORD,)), t, carray(like_ptr, (0,)))
    except Exception:       # noqa: BLE001
        return 0
    return 1


# each kind's entry (numba.cfunc compiles one per dtype: _SIGNATURE)
def _conv(record_ptr, t, like_ptr):
    return _entry(winograd_team.conv_tile, record_ptr, t, like_ptr)


def _weight_grad(record_ptr, t, like_ptr):
    return _entry(winograd_team.weight_grad_tile, record_ptr, t, like_ptr)


def _weights(record_ptr, t, like_ptr):
    return _entry(winograd_team.weights_tile, record_ptr, t, like_ptr)


def _image_gemms(record_ptr, t, like_ptr):
    return _entry(gemms_team.image_gemms_tile, record_ptr, t, like_ptr)


def _moments(record_ptr, t, like_ptr):
    return _entry(channels_team.moments_tile, record_ptr, t, like_ptr)


def _nsr_forward(record_ptr, t, like_ptr):
    return _entry(channels_team.forward_tile, record_ptr, t, like_ptr)


def _nsr_sums(record_ptr, t, like_ptr):
    return _entry(channels_team.sums_tile, record_ptr, t, like_ptr)


def _nsr_backward(record_ptr, t, like_ptr):
    return _entry(channels_team.backward_tile, record_ptr, t, like_ptr)


def _dw_forward(record_ptr, t, like_ptr):
    return _entry(depthwise_team.dw_forward_tile, record_ptr, t, like_ptr)


def _dw_backward(record_ptr, t, like_ptr):
    return _entry(depthwise_team.dw_backward_tile, record_ptr, t, like_ptr)


def _nhwc_forward(record_ptr, t, like_ptr):
    return _entry(depthwise_team.nhwc_forward_tile, record_ptr, t, like_ptr)


def _nhwc_backward(record_ptr, t, like_ptr):
    return _entry(depthwise_team.nhwc_backward_tile, record_ptr, t, like_ptr)


def _ave3x3_forward(record_ptr, t, like_ptr):
    return _entry(pool_team.ave3x3_forward_tile, record_ptr, t, like_ptr)


def _ave_forward(record_ptr, t, like_ptr):
    return _entry(pool_team.ave_forward_tile, record_ptr, t, like_ptr)


def _max2x2_forward(record_ptr, t, like_ptr):
    return _entry(pool_team.max2x2_forward_tile, record_ptr, t, like_ptr)


def _max3x3_forward(record_ptr, t, like_ptr):
    return _entry(pool_team.max3x3_forward_tile, record_ptr, t, like_ptr)


def _max_forward(record_ptr, t, like_ptr):
    return _entry(pool_team.max_forward_tile, record_ptr, t, like_ptr)


def _max_backward(record_ptr, t, like_ptr):
    return _entry(pool_team.max_backward_tile, record_ptr, t, like_ptr)


def _ave3x3_backward(record_ptr, t, like_ptr):
    return _entry(pool_team.ave3x3_backward_tile, record_ptr, t, like_ptr)


def _ave_backward(record_ptr, t, like_ptr):
    return _entry(pool_team.ave_backward_tile, record_ptr, t, like_ptr)


def _lrn_forward(record_ptr, t, like_ptr):
    return _entry(lrn_team.forward_tile, record_ptr, t, like_ptr)


def _lrn_backward(record_ptr, t, like_ptr):
    return _entry(lrn_team.backward_tile, record_ptr, t, like_ptr)


def _sum_relu_forward(record_ptr, t, like_ptr):
    return _entry(eltwise_team.forward_tile, record_ptr, t, like_ptr)


def _sum_relu_backward(record_ptr, t, like_ptr):
    return _entry(eltwise_team.backward_tile, record_ptr, t, like_ptr)


def _relu_forward(record_ptr, t, like_ptr):
    return _entry(eltwise_team.relu_forward_tile, record_ptr, t, like_ptr)


def _relu_backward(record_ptr, t, like_ptr):
    return _entry(eltwise_team.relu_backward_tile, record_ptr, t, like_ptr)


def _copy_rows(record_ptr, t, like_ptr):
    return _entry(copy_team.copy_tile, record_ptr, t, like_ptr)


def _direct_forward(record_ptr, t, like_ptr):
    return _entry(direct_team.forward_tile, record_ptr, t, like_ptr)


def _direct_backward(record_ptr, t, like_ptr):
    return _entry(direct_team.backward_tile, record_ptr, t, like_ptr)


ENTRIES = {CONV: _conv, WEIGHT_GRAD: _weight_grad, WEIGHTS: _weights, IMAGE_GEMMS: _image_gemms,
           MOMENTS: _moments, NSR_FORWARD: _nsr_forward, NSR_SUMS: _nsr_sums, NSR_BACKWARD: _nsr_backward,
           DW_FORWARD: _dw_forward, DW_BACKWARD: _dw_backward, NHWC_FORWARD: _nhwc_forward,
           NHWC_BACKWARD: _nhwc_backward, LRN_FORWARD: _lrn_forward, LRN_BACKWARD: _lrn_backward,
           SUM_RELU_FORWARD: _sum_relu_forward, SUM_RELU_BACKWARD: _sum_relu_backward,
           RELU_FORWARD: _relu_forward, RELU_BACKWARD: _relu_backward, COPY_ROWS: _copy_rows,
           DIRECT_FORWARD: _direct_forward, DIRECT_BACKWARD: _direct_backward,
           **dict(zip(POOL_FORWARDS, (_ave3x3_forward, _ave_forward, _max2x2_forward, _max3x3_forward, _max_forward))),
           **dict(zip(POOL_BACKWARDS, (_max_backward, _ave3x3_backward, _ave_backward)))}
_compiled: dict = {}        # entry_key(kind, dtype) -> its numba.cfunc (kept: its address stays valid)


def _signature(dtype):
    return types.intc(types.CPointer(types.int64), types.int64, types.CPointer(from_dtype(dtype)))


def tile_address(kind, dtype):
    """The address of the entry that runs a tile of a job of `kind` on arrays of `dtype`,
    compiled (or loaded from the cache) on first use."""
    key = entry_key(kind, dtype)
    entry = _compiled.get(key)
    if entry is None:              # (two leads at once: the first stored is the one every record gets)
        entry = _compiled.setdefault(key, cfunc(_signature(dtype), cache=True, nogil=True)(ENTRIES[key[0]]))
    return entry.address


def entry_key(kind, dtype):
    """_compiled's key of a kind's entry for dtype (plain integers: hashed fast on every job)."""
    return int(kind), np.dtype(dtype).num


@intrinsic
def _call_tile(typingctx, fn, record, t, like):
    """The entry at address fn on (record's data, t, like's data): 1, or 0 where the tile failed."""
    def codegen(context, builder, sig, args):
        record_ptr = context.make_array(sig.args[1])(context, builder, args[1]).data
        like_ptr = context.make_array(sig.args[3])(context, builder, args[3]).data
        entry = ir.FunctionType(ir.IntType(32), [record_ptr.type, ir.IntType(64), like_ptr.type])
        done = builder.call(builder.inttoptr(args[0], entry.as_pointer()), [record_ptr, args[2], like_ptr])
        return builder.sext(done, ir.IntType(64))
    return types.int64(types.int64, record, types.int64, like), codegen


@njit(cache=True, nogil=True)
def _work(flags, record, like, run, lead):
    """The lead (`lead`): post the job written into record, take its tiles until none is left, and
    return 1 once every tile is done without an error, else 0. A helper: take tiles of the jobs
    posted whose arrays have like's dtype until the run `run` ends; return how many it took. A
    tile that fails still counts as done, so that no thread waits for it for ever."""
    gen = open_job(flags) if lead else -1
    seen, taken = -1, 0
    while True:
        if not lead:
            if stopped(flags, run):
                return taken
            gen = posted(flags)          # between jobs: the lead's claims stay in its core's cache
            if gen == seen or record[ITEMSIZE] != like.itemsize:
                seen = gen
                continue
            seen = gen
        t = claim(flags, record, gen)
        while t >= 0:
            finish(flags, _call_tile(record[TILE], record, t, like) == 1)
            taken += 1
            t = claim(flags, record, gen)
        if lead:
            return 1 if close_job(flags, record, gen) else 0


def run_job(team, like):
    """Post the job just written into team.record (like: an empty array of its dtype), take its
    tiles with the team's helpers, and return once the last is done."""
    team.record[TILE] = tile_address(team.record[KIND], like.dtype)
    if not _work(team.flags, team.record, like, 0, True):
        raise MemoryError("a kernel's tile failed (out of memory?)")


def serve(flags, record, run, like):
    """A helper: take tiles of the jobs posted on `flags` whose arrays have like's dtype (a net's
    one) until the run `run` ends for this team; how many it took."""
    return _work(flags, record, like, run, False)
