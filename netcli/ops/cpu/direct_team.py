"""The direct convolution (direct.py) as team jobs (exec/team.py; run by ops/cpu/team_jobs.py;
posted by direct_passes.py): the forward and the backward in tiles of images (direct.direct_slots),
tile t through its own slot of the scratch; the backward's tile t leaves its images' weight
gradient in dw[t], which the lead then sums in tile order, as a call without helpers does. So
the bits are one call's."""
from numba import carray, njit

from ...exec.claims import DIRECT_BACKWARD, DIRECT_FORWARD, HEAD, PHASE_TILES, TILES, write_job
from .blas import address as _address, at as _at
from .direct import direct_backward_tile, direct_forward_tile


@njit(cache=True, nogil=True, inline="always")
def _array(record, field, shape, like):
    """The array at record[field] of this shape."""
    return carray(_at(record[field], like), shape)


# the sizes every job records after its arrays: (N, C, H, W, K, OH, OW, KH, KW, SH, SW, PH, PW)
# and its scratch's planes: xp's (rows, columns, channels), dyp's (rows, columns), dxt's channels
SIZES = 19


@njit(cache=True, nogil=True, inline="always")
def _sizes(inp, out, wt, xp, dyp, dxt, SH, SW, PH, PW):
    N, C, H, W = inp.shape
    return (N, C, H, W, out.shape[1], out.shape[2], out.shape[3], wt.shape[0], wt.shape[1], SH, SW, PH, PW,
            xp.shape[1], xp.shape[2], xp.shape[3], dyp.shape[1], dyp.shape[2], dxt.shape[3])


@njit(cache=True, nogil=True, inline="always")
def _read_sizes(record, at):
    g = record[at:at + SIZES]
    return (g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13], g[14], g[15],
            g[16], g[17], g[18])


# forward_job's record, from HEAD: its arrays, then the sizes
(F_OUT, F_INP, F_WT, F_B, F_XP, F_YT) = range(HEAD, HEAD + 6)
F_SIZES = HEAD + 6


@njit(cache=True, nogil=True)
def forward_job(record, out, inp, wt, b, xp, yt, SH, SW, PH, PW):
    """The job (into record) of the forward's tiles (direct_forward_tile) with these arguments."""
    fields = (_address(out), _address(inp), _address(wt), _address(b), _address(xp), _address(yt)) + \
        _sizes(inp, out, wt, xp, xp, xp, SH, SW, PH, PW)
    write_job(record, DIRECT_FORWARD, min(inp.shape[0], PHASE_TILES), 0, 0, 0, out.itemsize, fields)


@njit(cache=True, nogil=True)
def forward_tile(record, t, like):
    """Tile t of a forward_job."""
    N, C, H, W, K, OH, OW, KH, KW, SH, SW, PH, PW, Hx, Wx, Cg, _, _, _ = _read_sizes(record, F_SIZES)
    tiles = record[TILES]
    direct_forward_tile(t, tiles, _array(record, F_OUT, (N, K, OH, OW), like),
                        _array(record, F_INP, (N, C, H, W), like), _array(record, F_WT, (KH, KW, C, K), like),
                        _array(record, F_B, (K,), like), _array(record, F_XP, (tiles, Hx, Wx, Cg), like),
                        _array(record, F_YT, (tiles, OH, OW, K), like), SH, SW, PH, PW)


# backward_job's record, from HEAD
(B_DINP, B_DW, B_DOUT, B_INP, B_WF, B_XP, B_DYP, B_DXT, B_ZEROS, B_DATA, B_WEIGHTS) = range(HEAD, HEAD + 11)
B_SIZES = HEAD + 11


@njit(cache=True, nogil=True)
def backward_job(record, dinp, dw, dout, inp, wf, xp, dyp, dxt, zeros, SH, SW, PH, PW, data, weights):
    """The job (into record) of the backward's tiles (direct_backward_tile, each in its own slot)
    with these arguments."""
    fields = (_address(dinp), _address(dw), _address(dout), _address(inp), _address(wf), _address(xp),
              _address(dyp), _address(dxt), _address(zeros), int(data), int(weights)) + \
        _sizes(inp, dout, wf, xp, dyp, dxt, SH, SW, PH, PW)
    write_job(record, DIRECT_BACKWARD, min(inp.shape[0], PHASE_TILES), 0, 0, 0, dout.itemsize, fields)


@njit(cache=True, nogil=True)
def backward_tile(record, t, like):
    """Tile t of a backward_job."""
    N, C, H, W, K, OH, OW, KH, KW, SH, SW, PH, PW, Hx, Wx, Cg, Hd, Wd, Cv = _read_sizes(record, B_SIZES)
    tiles = record[TILES]
    direct_backward_tile(t, tiles, _array(record, B_DINP, (N, C, H, W), like),
                         _array(record, B_DW, (tiles, KH, KW, Cg, K), like),
                         _array(record, B_DOUT, (N, K, OH, OW), like), _array(record, B_INP, (N, C, H, W), like),
                         _array(record, B_WF, (KH, KW, K, Cv), like), _array(record, B_XP, (tiles, Hx, Wx, Cg), like),
                         _array(record, B_DYP, (tiles, Hd, Wd, K), like),
                         _array(record, B_DXT, (tiles, H, W, Cv), like), _array(record, B_ZEROS, (Cv,), like),
                         SH, SW, PH, PW, record[B_DATA] != 0, record[B_WEIGHTS] != 0, t)
