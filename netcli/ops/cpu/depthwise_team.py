"""Depthwise convolutions (depthwise.py, depthwise_nhwc.py) as team jobs (exec/team.py; run by
ops/cpu/team_jobs.py; called through depthwise_passes.py).

The forward and the input gradient go in tiles of images (each image's planes are its own); the
weight gradient in tiles of channels, channels last in tiles of taps (each sum adds the images
in the same order whichever tile holds it). So the bits are one call's. The channels-last
kernels' weights are made channels-last once, by the lead, before the job is posted; their
backward is two phases: the images (dout channels-last, and the input gradient), then the
weight gradient's taps.
A channels-last forward whose padded buffer holds one image (one that keeps nothing for a
backward) is one tile."""
from numba import carray, njit

from ...exec.claims import DW_BACKWARD, DW_FORWARD, HEAD, NHWC_BACKWARD, NHWC_FORWARD, PHASE1, PHASE_TILES, TILES, \
    write_job
from .blas import address as _address, at as _at
from .depthwise import depthwise_backward_data, depthwise_backward_weight_part, depthwise_forward
from .depthwise_nhwc import (_channels_last, _to_channels_last, depthwise_nhwc_backward_data_images,
                             depthwise_nhwc_backward_weight_part, depthwise_nhwc_forward_images)


@njit(cache=True, nogil=True, inline="always")
def _part(t, tiles, n):
    """Tile t's part of range(n), of `tiles`."""
    return n * t // tiles, n * (t + 1) // tiles


@njit(cache=True, nogil=True, inline="always")
def _array(record, field, n0, n1, a, b, c, like):
    """Rows n0..n1 of the 4-D array at record[field] whose rows are (a, b, c)."""
    return carray(_at(record[field] + n0 * a * b * c * like.itemsize, like), (n1 - n0, a, b, c))


# the geometry every job records after its arrays: (N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW)
GEOMETRY = 14


@njit(cache=True, nogil=True, inline="always")
def _geometry(inp, out, KH, KW, SH, SW, PH, PW, DH, DW):
    N, C, H, W = inp.shape
    return (N, C, H, W, out.shape[2], out.shape[3], KH, KW, SH, SW, PH, PW, DH, DW)


@njit(cache=True, nogil=True, inline="always")
def _geo(record, at):
    """The geometry recorded from record[at] on."""
    g = record[at:at + GEOMETRY]
    return g[0], g[1], g[2], g[3], g[4], g[5], g[6], g[7], g[8], g[9], g[10], g[11], g[12], g[13]


# dw_forward_job's record, from HEAD: its arrays, then the geometry
(F_OUT, F_INP, F_WEIGHT, F_BIAS, F_NBIAS) = range(HEAD, HEAD + 5)
F_GEO = HEAD + 5


@njit(cache=True, nogil=True)
def dw_forward_job(record, out, inp, weight, bias, KH, KW, SH, SW, PH, PW, DH, DW):
    """The job (into record) of depthwise_forward with these arguments, in tiles of images."""
    fields = (_address(out), _address(inp), _address(weight), _address(bias), bias.shape[0]) + \
        _geometry(inp, out, KH, KW, SH, SW, PH, PW, DH, DW)
    write_job(record, DW_FORWARD, min(inp.shape[0], PHASE_TILES), 0, 0, 0, out.itemsize, fields)


@njit(cache=True, nogil=True)
def dw_forward_tile(record, t, like):
    """Tile t of a dw_forward_job: its images."""
    N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW = _geo(record, F_GEO)
    n0, n1 = _part(t, record[TILES], N)
    depthwise_forward(_array(record, F_OUT, n0, n1, C, OH, OW, like), _array(record, F_INP, n0, n1, C, H, W, like),
                      _array(record, F_WEIGHT, 0, C, 1, KH, KW, like),
                      carray(_at(record[F_BIAS], like), (record[F_NBIAS],)), KH, KW, SH, SW, PH, PW, DH, DW)


# dw_backward_job's record, from HEAD
(B_DINP, B_DWEIGHT, B_DOUT, B_INP, B_WEIGHT) = range(HEAD, HEAD + 5)
B_GEO = HEAD + 5


@njit(cache=True, nogil=True)
def dw_backward_job(record, dinp, dweight, dout, inp, weight, KH, KW, SH, SW, PH, PW, DH, DW):
    """The job (into record) of depthwise_backward_data (where dinp has rows) in tiles of images,
    and of depthwise_backward_weight (where dweight has rows) in tiles of channels: one phase,
    the two independent."""
    N, C = inp.shape[0], inp.shape[1]
    P = min(N, PHASE_TILES) if dinp.shape[0] else 0
    Q = min(C, PHASE_TILES) if dweight.shape[0] else 0
    fields = (_address(dinp), _address(dweight), _address(dout), _address(inp), _address(weight)) + \
        _geometry(inp, dout, KH, KW, SH, SW, PH, PW, DH, DW)
    write_job(record, DW_BACKWARD, P + Q, P, 0, 0, dout.itemsize, fields)


@njit(cache=True, nogil=True)
def dw_backward_tile(record, t, like):
    """Tile t of a dw_backward_job: images of the input gradient, then channels of the weights'."""
    N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW = _geo(record, B_GEO)
    P = record[PHASE1]
    if t < P:
        n0, n1 = _part(t, P, N)
        depthwise_backward_data(_array(record, B_DINP, n0, n1, C, H, W, like),
                                _array(record, B_DOUT, n0, n1, C, OH, OW, like),
                                _array(record, B_WEIGHT, 0, C, 1, KH, KW, like), KH, KW, SH, SW, PH, PW, DH, DW)
        return
    c0, c1 = _part(t - P, record[TILES] - P, C)
    depthwise_backward_weight_part(_array(record, B_DWEIGHT, 0, C, 1, KH, KW, like),
                                   _array(record, B_DOUT, 0, N, C, OH, OW, like),
                                   _array(record, B_INP, 0, N, C, H, W, like), KH, KW, SH, SW, PH, PW, DH, DW, c0, c1)


# nhwc_forward_job's record, from HEAD
(G_OUT, G_INP, G_WEIGHT, G_BIAS, G_NBIAS, G_XP, G_XP_ROWS, G_HP, G_WP, G_YT, G_WT) = range(HEAD, HEAD + 11)
G_GEO = HEAD + 11


@njit(cache=True, nogil=True)
def nhwc_forward_job(record, out, inp, weight, bias, xp, yt, wt, KH, KW, SH, SW, PH, PW, DH, DW):
    """The job (into record) of depthwise_nhwc_forward with these arguments (its weights made
    channels-last here), in tiles of images where xp holds every image, else in one."""
    _channels_last(weight, wt)
    N = inp.shape[0]
    fields = (_address(out), _address(inp), _address(weight), _address(bias), bias.shape[0], _address(xp),
              xp.shape[0], xp.shape[1], xp.shape[2], _address(yt), _address(wt)) + \
        _geometry(inp, out, KH, KW, SH, SW, PH, PW, DH, DW)
    write_job(record, NHWC_FORWARD, min(N, PHASE_TILES) if xp.shape[0] >= N else 1, 0, 0, 0, out.itemsize, fields)


@njit(cache=True, nogil=True)
def nhwc_forward_tile(record, t, like):
    """Tile t of an nhwc_forward_job: its images."""
    N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW = _geo(record, G_GEO)
    n0, n1 = _part(t, record[TILES], N)
    every = record[G_XP_ROWS] >= N
    depthwise_nhwc_forward_images(
        _array(record, G_OUT, n0, n1, C, OH, OW, like), _array(record, G_INP, n0, n1, C, H, W, like),
        _array(record, G_WEIGHT, 0, C, 1, KH, KW, like), carray(_at(record[G_BIAS], like), (record[G_NBIAS],)),
        _array(record, G_XP, n0 if every else 0, n1 if every else 1, record[G_HP], record[G_WP], C, like),
        _array(record, G_YT, n0, n1, OH, OW, C, like), carray(_at(record[G_WT], like), (KH, KW, C)),
        SH, SW, PH, PW, DH, DW)


# nhwc_backward_job's record, from HEAD
(H_DINP, H_DWEIGHT, H_DOUT, H_XP, H_HP, H_WP, H_YT, H_DXP, H_WT, H_PART, H_DATA) = range(HEAD, HEAD + 11)
H_GEO = HEAD + 11


@njit(cache=True, nogil=True)
def nhwc_backward_job(record, dinp, dweight, dout, weight, xp, yt, dxp, wt, part, H, W, KH, KW, SH, SW, PH, PW, DH,
                      DW):
    """The job (into record) of depthwise_nhwc_backward_data (where dinp has rows) and
    depthwise_nhwc_backward_weight (where dweight has rows; its fresh_dout where dinp has none):
    first the images (dout made channels-last in yt, and the input gradient), then the weight
    gradient's taps; H, W: the input's plane."""
    N, C, OH, OW = dout.shape
    data = dinp.shape[0] > 0
    if data:
        _channels_last(weight, wt)
    P = min(N, PHASE_TILES)
    Q = min(KH * KW, PHASE_TILES) if dweight.shape[0] else 0
    fields = (_address(dinp), _address(dweight), _address(dout), _address(xp), xp.shape[1], xp.shape[2],
              _address(yt), _address(dxp), _address(wt), _address(part), int(data),
              N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW)
    write_job(record, NHWC_BACKWARD, P + Q, P, 0, 0, dout.itemsize, fields)


@njit(cache=True, nogil=True)
def nhwc_backward_tile(record, t, like):
    """Tile t of an nhwc_backward_job: images (dout channels-last, the input gradient), then
    taps of the weights' gradient."""
    N, C, H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW = _geo(record, H_GEO)
    P, Hp, Wp = record[PHASE1], record[H_HP], record[H_WP]
    if t < P:
        n0, n1 = _part(t, P, N)
        dout, yt = _array(record, H_DOUT, n0, n1, C, OH, OW, like), _array(record, H_YT, n0, n1, OH, OW, C, like)
        if record[H_DATA]:
            depthwise_nhwc_backward_data_images(
                _array(record, H_DINP, n0, n1, C, H, W, like), dout, yt,
                _array(record, H_DXP, n0, n1, Hp, Wp, C, like), carray(_at(record[H_WT], like), (KH, KW, C)),
                SH, SW, PH, PW, DH, DW)
        else:
            _to_channels_last(dout, yt, 0, 0)
        return
    t0, t1 = _part(t - P, record[TILES] - P, KH * KW)
    depthwise_nhwc_backward_weight_part(
        _array(record, H_DWEIGHT, 0, C, 1, KH, KW, like), _array(record, H_XP, 0, N, Hp, Wp, C, like),
        _array(record, H_YT, 0, N, OH, OW, C, like), _array(record, H_PART, 0, KH * KW, OH, OW, C, like),
        KH, KW, SH, SW, DH, DW, t0, t1)
