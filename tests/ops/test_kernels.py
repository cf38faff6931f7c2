"""Each Numba kernel against a plain NumPy reference on random data, several shapes."""
import numpy as np
import pytest

from netcli.ops.cpu import im2col, pool
from reference import pool2d, pool_out

SHAPES = [  # N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW
    (1, 1, 5, 5, 3, 3, 1, 1, 0, 0, 1, 1),
    (2, 3, 7, 6, 3, 2, 2, 1, 1, 0, 1, 1),
    (3, 2, 9, 9, 3, 3, 2, 2, 1, 2, 2, 1),
    (1, 4, 8, 11, 5, 5, 1, 3, 2, 2, 1, 2),
]


def ref_im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    N, C, H, W = x.shape
    cols = np.zeros((C * KH * KW, N * OH * OW), x.dtype)
    for c in range(C):
        for i in range(KH):
            for j in range(KW):
                for n in range(N):
                    for oh in range(OH):
                        for ow in range(OW):
                            h, w = oh * SH - PH + i * DH, ow * SW - PW + j * DW
                            if 0 <= h < H and 0 <= w < W:
                                cols[(c * KH + i) * KW + j, (n * OH + oh) * OW + ow] = x[n, c, h, w]
    return cols


def ref_col2im(cols, xshape, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW):
    N, C, H, W = xshape
    ref = np.zeros(xshape)
    for r in range(cols.shape[0]):
        cc, rest = divmod(r, KH * KW)
        i, j = divmod(rest, KW)
        for q in range(cols.shape[1]):
            n, rest2 = divmod(q, OH * OW)
            oh, ow = divmod(rest2, OW)
            h, w = oh * SH - PH + i * DH, ow * SW - PW + j * DW
            if 0 <= h < H and 0 <= w < W:
                ref[n, cc, h, w] += cols[r, q]
    return ref


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2col_and_col2im(shape, dtype):
    N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW = shape
    OH = (H + 2 * PH - (DH * (KH - 1) + 1)) // SH + 1
    OW = (W + 2 * PW - (DW * (KW - 1) + 1)) // SW + 1
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    cols = np.empty((C * KH * KW, N * OH * OW), dtype)
    im2col.im2col(x, cols, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    np.testing.assert_array_equal(cols, ref_im2col(x, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW))
    # col2im is im2col's adjoint: <im2col(x), c> == <x, col2im(c)>, and matches a scatter reference
    c = rng.standard_normal(cols.shape).astype(dtype)
    dx = rng.standard_normal(x.shape).astype(dtype)  # garbage: the kernel must overwrite it
    im2col.col2im(c, dx, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    np.testing.assert_allclose(dx, ref_col2im(c, x.shape, KH, KW, SH, SW, PH, PW, DH, DW, OH, OW),
                               rtol=1e-5, atol=1e-5)
    assert np.isclose(np.vdot(cols.astype(np.float64), c), np.vdot(x.astype(np.float64), dx), rtol=1e-4)


POOLS = [  # N, C, H, W, k, s, p
    (1, 1, 4, 4, (2, 2), (2, 2), (0, 0)),
    (2, 3, 7, 7, (3, 3), (2, 2), (0, 0)),   # ceil mode: 3 outputs, last window clipped
    (2, 2, 6, 5, (3, 2), (2, 1), (1, 1)),
    (3, 2, 32, 32, (3, 3), (2, 2), (1, 1)),
    (1, 4, 5, 9, (5, 5), (3, 3), (2, 2)),
]


@pytest.mark.parametrize("shape", POOLS)
def test_maxpool_against_reference(shape):
    N, C, H, W, k, s, p = shape
    rng = np.random.default_rng(1)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    OH, OW = pool_out(H, k[0], s[0], p[0]), pool_out(W, k[1], s[1], p[1])
    out = np.empty((N, C, OH, OW), np.float32)
    mask = np.empty((N, C, OH, OW), np.int32)
    pool.maxpool_forward(x, out, mask, k[0], k[1], s[0], s[1], p[0], p[1])
    np.testing.assert_array_equal(out, pool2d(x, k, s, p, "MAX").astype(np.float32))
    assert np.array_equal(np.take_along_axis(x.reshape(N, C, -1), mask.reshape(N, C, -1), 2).reshape(out.shape), out)
    # backward: scatter-add to the winners
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx = np.full(x.shape, 7.0, np.float32)
    pool.maxpool_backward(dout, mask, dx)
    ref = np.zeros((N, C, H * W))
    for n in range(N):
        for c in range(C):
            np.add.at(ref[n, c], mask[n, c].ravel(), dout[n, c].ravel())
    np.testing.assert_allclose(dx, ref.reshape(x.shape), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", POOLS)
def test_avepool_against_reference(shape):
    N, C, H, W, k, s, p = shape
    rng = np.random.default_rng(2)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    OH, OW = pool_out(H, k[0], s[0], p[0]), pool_out(W, k[1], s[1], p[1])
    out = np.empty((N, C, OH, OW), np.float32)
    pool.avepool_forward(x, out, k[0], k[1], s[0], s[1], p[0], p[1])
    np.testing.assert_allclose(out, pool2d(x, k, s, p, "AVE"), rtol=1e-5, atol=1e-6)
    # backward is the adjoint of forward
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx = np.full(x.shape, 3.0, np.float32)
    pool.avepool_backward(dout, dx, k[0], k[1], s[0], s[1], p[0], p[1])
    assert np.isclose(np.vdot(out.astype(np.float64), dout), np.vdot(x.astype(np.float64), dx), rtol=1e-4)


def _random_geometries(count, seed=7, max_c=3, max_k=4):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < count:
        N, C = rng.integers(1, 4), rng.integers(1, max_c + 1)
        KH, KW = rng.integers(1, max_k + 1, 2)
        SH, SW, DH, DW = rng.integers(1, 3, 4)
        PH, PW = rng.integers(0, 3, 2)
        H, W = rng.integers(3, 12, 2)
        OH = (H + 2 * PH - (DH * (KH - 1) + 1)) // SH + 1
        OW = (W + 2 * PW - (DW * (KW - 1) + 1)) // SW + 1
        if OH > 0 and OW > 0:
            out.append(tuple(int(v) for v in (N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW)))
    return out


@pytest.mark.parametrize("shape", _random_geometries(12))
def test_im2col_col2im_random_geometry(shape):
    test_im2col_and_col2im(shape, np.float32)


@pytest.mark.parametrize("shape", [(1, 1, 2, 2), (2, 3, 8, 6), (3, 5, 24, 24)])
def test_maxpool2x2_fast_path_matches_general_kernel(shape):
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    out = np.empty(shape[:2] + (shape[2] // 2, shape[3] // 2), np.float32)
    mask = np.empty(out.shape, np.int32)
    pool.maxpool2x2_forward(x, out, mask)
    ref_out, ref_mask = np.empty_like(out), np.empty_like(mask)
    pool.maxpool_forward(x, ref_out, ref_mask, 2, 2, 2, 2, 0, 0)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(mask, ref_mask)
    np.testing.assert_array_equal(out, pool2d(x, (2, 2), (2, 2), (0, 0), "MAX").astype(np.float32))


@pytest.mark.parametrize("shape", SHAPES + _random_geometries(4, seed=9))
def test_per_image_columns(shape):
    N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW = shape
    OH = (H + 2 * PH - (DH * (KH - 1) + 1)) // SH + 1
    OW = (W + 2 * PW - (DW * (KW - 1) + 1)) // SW + 1
    geo = (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    cols = rng.standard_normal((N, C * KH * KW, OH * OW)).astype(np.float32)
    im2col.im2col_images(x, cols, *geo)
    ref = ref_im2col(x, *geo).reshape(C * KH * KW, N, OH * OW).transpose(1, 0, 2)
    np.testing.assert_array_equal(cols, ref)
    c = rng.standard_normal(cols.shape).astype(np.float32)
    dx = rng.standard_normal(x.shape).astype(np.float32)
    im2col.col2im_images(c, dx, *geo)
    ref_dx = ref_col2im(c.transpose(1, 0, 2).reshape(C * KH * KW, -1), x.shape, *geo)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("N,K,P", [(1, 1, 1), (2, 3, 20), (3, 20, 576)])
def test_bias_add_and_sum(N, K, P):
    rng = np.random.default_rng(4)
    y = rng.standard_normal((N, K, P)).astype(np.float32)
    bias = rng.standard_normal(K).astype(np.float32)
    out = y.copy()
    im2col.add_bias(out, bias)
    np.testing.assert_allclose(out, y + bias[:, None], rtol=1e-6)
    db = rng.standard_normal(K).astype(np.float32)
    db0 = db.copy()
    im2col.sum_bias(y, db)
    np.testing.assert_allclose(db, db0 + y.astype(np.float64).sum(axis=(0, 2)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("W", [7, 8, 19])             # 8 x 8 blocks of columns, with and without the rest
@pytest.mark.parametrize("C", [3, 7, 8, 15, 16, 37])  # number by number below 8 channels, in blocks from 8
def test_nchw_nhwc_transposes(C, W, dtype):
    rng = np.random.default_rng(C * W)
    x = rng.standard_normal((2, C, 5, W)).astype(dtype)
    xt = np.full((2, 5, W, C), np.nan, dtype)
    im2col.nchw_to_nhwc(x, xt)
    np.testing.assert_array_equal(xt, x.transpose(0, 2, 3, 1))
    back = np.full(x.shape, np.nan, dtype)
    im2col.nhwc_to_nchw(xt, back)
    np.testing.assert_array_equal(back, x)
    padded = np.full((2, 8, W + 3, C), np.nan, dtype)       # into and out of a padded plane (depthwise_nhwc.py's)
    im2col.nchw_to_nhwc_at(x, padded, 2, 1)
    np.testing.assert_array_equal(padded[:, 2:7, 1:W + 1], x.transpose(0, 2, 3, 1))
    assert np.isnan(padded[:, :2]).all() and np.isnan(padded[:, 7:]).all() and np.isnan(padded[:, :, 0]).all()
    assert np.isnan(padded[:, :, W + 1:]).all()
    back[...] = np.nan
    im2col.nhwc_to_nchw_at(padded, back, 2, 1)
    np.testing.assert_array_equal(back, x)


def test_transposes_of_strided_views_go_number_by_number():
    """Views whose rows' numbers are not one after another (every other column, columns
    reversed) cannot go in 8 x 8 blocks (transpose.py): the same numbers, nothing read outside."""
    rng = np.random.default_rng(3)
    base = rng.standard_normal((2, 16, 5, 34)).astype(np.float32)
    for x in (base[..., ::2], base[..., ::-1]):
        xt = np.full((2, 5, x.shape[3], 16), np.nan, np.float32)
        im2col.nchw_to_nhwc(x, xt)
        np.testing.assert_array_equal(xt, x.transpose(0, 2, 3, 1))
        back = np.full((2, 16, 5, 2 * x.shape[3]), np.nan, np.float32)[..., ::2]
        im2col.nhwc_to_nchw(xt, back)
        np.testing.assert_array_equal(back, x)


def test_rows_to_nchw_without_bias_adds_zero():
    """No bias: + 0, so a -0 of the GEMM's output comes out +0, in blocks and number by number."""
    for N, K, OH, OW in ((1, 16, 24, 24), (2, 4, 3, 3)):
        res = np.full((N * OH * OW, K), -0.0, np.float32)
        y = np.full((N, K, OH, OW), np.nan, np.float32)
        im2col.rows_to_nchw(res, np.zeros(0, np.float32), y, 0)
        assert (y == 0).all() and not np.signbit(y).any()


@pytest.mark.parametrize("C", [16, 24])
def test_back_onto_planes_4kb_apart(C):
    """32x32 planes of float32 are 4 KB apart: more than 16 channels go back through a buffer
    (im2col.ALIAS_BYTES), 16 in blocks; the same numbers either way."""
    rng = np.random.default_rng(C)
    x = rng.standard_normal((2, C, 32, 32)).astype(np.float32)
    padded = np.full((2, 34, 35, C), np.nan, np.float32)
    im2col.nchw_to_nhwc_at(x, padded, 1, 2)
    back = np.full(x.shape, np.nan, np.float32)
    im2col.nhwc_to_nchw_at(padded, back, 1, 2)
    np.testing.assert_array_equal(back, x)


# C*KW of 16 and more is the row layout's use; smaller ones too
@pytest.mark.parametrize("shape", SHAPES + _random_geometries(12, seed=11, max_c=23, max_k=5)
                         + [(2, 20, 12, 12, 5, 5, 1, 1, 0, 0, 1, 1)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_im2row_and_row2im(shape, dtype):
    N, C, H, W, KH, KW, SH, SW, PH, PW, DH, DW = shape
    OH = (H + 2 * PH - (DH * (KH - 1) + 1)) // SH + 1
    OW = (W + 2 * PW - (DW * (KW - 1) + 1)) // SW + 1
    geo = (KH, KW, SH, SW, PH, PW, DH, DW, OH, OW)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    xt = rng.standard_normal((N, H, W, C)).astype(dtype)         # garbage, overwritten
    im2col.nchw_to_nhwc(x, xt)
    np.testing.assert_array_equal(xt, x.transpose(0, 2, 3, 1))
    rows = rng.standard_normal((N * OH * OW, KH * KW * C)).astype(dtype)
    im2col.im2row(xt, rows, *geo, 0)
    ref = ref_im2col(x, *geo).reshape(C, KH, KW, -1).transpose(3, 1, 2, 0).reshape(rows.shape)
    np.testing.assert_array_equal(rows, ref)
    q0, q1 = rows.shape[0] // 3, rows.shape[0] - rows.shape[0] // 4     # a tile's rows (conv2d.py)
    part = np.full((q1 - q0, rows.shape[1]), np.nan, dtype)
    im2col.im2row(xt, part, *geo, q0)
    np.testing.assert_array_equal(part, ref[q0:q1])
    r = rng.standard_normal(rows.shape).astype(dtype)
    im2col.row2im(r, xt, *geo)                    # xt holds garbage from before: must be overwritten
    dx = np.empty_like(x)
    im2col.nhwc_to_nchw(xt, dx)
    ref_dx = np.zeros(x.shape)
    for q in range(rows.shape[0]):
        n, rest = divmod(q, OH * OW)
        oh, ow = divmod(rest, OW)
        for col in range(rows.shape[1]):
            ij, c = divmod(col, C)
            i, j = divmod(ij, KW)
            h, w = oh * SH - PH + i * DH, ow * SW - PW + j * DW
            if 0 <= h < H and 0 <= w < W:
                ref_dx[n, c, h, w] += r[q, col]
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("N,K,OH,OW", [(1, 1, 1, 1), (2, 3, 4, 5), (5, 7, 3, 2), (2, 50, 8, 8), (2, 20, 24, 24),
                                     (1, 1100, 3, 3)])      # the last two: blocks of 409 positions; of 8 and 1
def test_gemm_layout_moves(N, K, OH, OW):
    rng = np.random.default_rng(6)
    P = OH * OW
    res = rng.standard_normal((N * P, K)).astype(np.float32)
    bias = rng.standard_normal(K).astype(np.float32)
    y = np.empty((N, K, OH, OW), np.float32)
    im2col.rows_to_nchw(res, bias, y, 0)
    ref = res.reshape(N, OH, OW, K).transpose(0, 3, 1, 2)
    np.testing.assert_allclose(y, ref + bias.reshape(1, K, 1, 1), rtol=1e-6)
    im2col.rows_to_nchw(res, np.zeros(0, np.float32), y, 0)
    np.testing.assert_array_equal(y, ref)
    for q0, q1 in [(0, 1), (P // 3, N * P - P // 4), (N * P - 1, N * P)]:   # tiles of rows: only theirs
        part = np.full_like(y, np.nan)
        im2col.rows_to_nchw(res[q0:q1], bias, part, q0)
        got = part.transpose(0, 2, 3, 1).reshape(N * P, K)
        want = (ref + bias.reshape(1, K, 1, 1)).transpose(0, 2, 3, 1).reshape(N * P, K)
        np.testing.assert_array_equal(got[q0:q1], want[q0:q1])
        assert np.isnan(got[:q0]).all() and np.isnan(got[q1:]).all()
    dy = rng.standard_normal((N, K, OH, OW)).astype(np.float32)
    dres = np.empty((K, N * P), np.float32)
    db = rng.standard_normal(K).astype(np.float32)
    db0 = db.copy()
    im2col.nchw_to_gemm(dy, dres, db)
    np.testing.assert_array_equal(dres, dy.transpose(1, 0, 2, 3).reshape(K, N * P))
    np.testing.assert_allclose(db, db0 + dy.sum(axis=(0, 2, 3)), rtol=1e-5, atol=1e-5)


def test_compute_threads_flush_subnormals():
    from netcli.exec import threads
    from netcli.ops.cpu.fpmode import X86
    if not X86:
        pytest.skip("flush-to-zero is x86 only")
    threads.chunks(4)                      # layer setup prepares the main thread
    out = []
    threads.run(lambda i, lo, hi: out.append(float((np.array([1e-39], np.float32) * np.float32(2))[0])),
                threads.chunks(4, 2))
    assert float((np.array([1e-39], np.float32) * np.float32(2))[0]) == 0.0
    assert out == [0.0] * len(out)


@pytest.mark.parametrize("R,C,I", [(1, 2, 1), (7, 10, 1), (3, 5, 4)])
def test_softmax_loss_kernels(R, C, I):
    from netcli.ops.cpu.softmax import softmax_loss_backward, softmax_loss_forward
    rng = np.random.default_rng(12)
    x = (rng.standard_normal((R, C, I)) * 4).astype(np.float32)
    lab = rng.integers(0, C, (R, I)).astype(np.float32)
    lab[0, 0] = 1                                      # ignored below
    prob = np.empty_like(x)
    total, count, _, bad = softmax_loss_forward(x, lab, prob, 1, True)
    e = np.exp(x.astype(np.float64) - x.max(axis=1, keepdims=True))
    ref = e / e.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(prob, ref, rtol=1e-5, atol=1e-7)
    valid = lab != 1
    picked = np.take_along_axis(ref, lab.astype(int)[:, None, :], 1)[:, 0, :]
    assert not bad and count == valid.sum()
    assert total == pytest.approx((np.log(picked) * valid).sum(), rel=1e-5)
    dx = rng.standard_normal(x.shape).astype(np.float32)
    softmax_loss_backward(prob, lab, dx, 0.5, 1, True)
    onehot = np.zeros_like(ref)
    np.put_along_axis(onehot, lab.astype(int)[:, None, :], 1.0, 1)
    np.testing.assert_allclose(dx, 0.5 * (ref - onehot) * valid[:, None, :], rtol=1e-5, atol=1e-6)
    lab[-1, -1] = C                                    # out of range: reported, not read
    assert softmax_loss_forward(x, lab, prob, 1, True)[2:] == (C, True)
    lab[-1, -1] = 0.5                                  # not a whole number: reported too
    assert softmax_loss_forward(x, lab, prob, 1, True)[2:] == (0.5, True)
    lab[-1, -1] = np.nan
    assert softmax_loss_forward(x, lab, prob, 1, True)[3]


def test_run_on_one_thread_takes_every_chunk_in_order():
    """One usable core (taskset -c 0): no pool exists, and run() must still do every chunk."""
    from netcli.exec import threads
    before = threads.count()
    threads.set_threads(1)
    try:
        seen = []
        threads.run(lambda i, lo, hi: seen.append((i, lo, hi)), threads.chunks(10, 3))
        assert [s[0] for s in seen] == [0, 1, 2] and seen[0][1] == 0 and seen[-1][2] == 10
    finally:
        threads.set_threads(before)


def _pool3x3_geometries(count, seed=11):
    rng = np.random.default_rng(seed)
    out = [(2, 3, 32, 32, 2, 0), (2, 2, 7, 7, 2, 0), (1, 2, 8, 8, 2, 1), (1, 3, 5, 6, 1, 2)]
    while len(out) < count:
        N, C, H, W = rng.integers(1, 3), rng.integers(1, 4), rng.integers(3, 14), rng.integers(3, 14)
        out.append((int(N), int(C), int(H), int(W), int(rng.integers(1, 4)), int(rng.integers(0, 3))))
    return out


@pytest.mark.parametrize("shape", _pool3x3_geometries(12))
def test_pool3x3_paths_against_reference(shape):
    """The unrolled 3x3 MAX and AVE kernels (inside windows) with Caffe's border rule, against the
    NumPy reference, and their backward against the general kernels."""
    N, C, H, W, s, p = shape
    rng = np.random.default_rng(5)
    x = rng.standard_normal((N, C, H, W)).astype(np.float32)
    OH, OW = pool_out(H, 3, s, p), pool_out(W, 3, s, p)
    out, mask = np.empty((N, C, OH, OW), np.float32), np.empty((N, C, OH, OW), np.int32)
    pool.maxpool3x3_forward(x, out, mask, s, s, p, p)
    np.testing.assert_array_equal(out, pool2d(x, (3, 3), (s, s), (p, p), "MAX").astype(np.float32))
    ref_out, ref_mask = np.empty_like(out), np.empty_like(mask)
    pool.maxpool_forward(x, ref_out, ref_mask, 3, 3, s, s, p, p)
    np.testing.assert_array_equal(mask, ref_mask)
    pool.avepool3x3_forward(x, out, s, s, p, p)
    np.testing.assert_allclose(out, pool2d(x, (3, 3), (s, s), (p, p), "AVE"), rtol=1e-5, atol=1e-6)
    dout = rng.standard_normal(out.shape).astype(np.float32)
    dx, ref_dx = np.full(x.shape, 3.0, np.float32), np.empty(x.shape, np.float32)
    pool.avepool3x3_backward(dout, dx, s, s, p, p)
    pool.avepool_backward(dout, ref_dx, 3, 3, s, s, p, p)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-6, atol=1e-6)
