"""The layer kernels behind the layers' boundary (netcli/ops/cpu/conv2d.py, inner_product.py)
against plain NumPy references on random inputs: each conv algorithm, groups, padding, stride,
dilation; forward (with the images it reports final as it goes: `after`), the three gradients,
and the += / fresh write modes; "im2row", "im2col" and
"winograd"/"winograd4" also one image at a time (ops/cpu/chunks.py), their patches then made again in the
backward; the inner product's weight gradient also in tiles of rows."""
import numpy as np
import pytest

from netcli.ops.cpu import chunks, conv2d, inner_product
from netcli.ops.cpu.conv2d import conv2d_backward, conv2d_forward, conv2d_scratch, conv2d_workspace, patch_chunks
from netcli.ops.cpu.conv2d_rule import conv2d_algorithm
from netcli.ops.cpu.inner_product import inner_product_backward, inner_product_forward


def ref_conv(x, w, b, S, P, D, G):
    n, C, H, W = x.shape
    K, cg, KH, KW = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    OH = (H + 2 * P - D * (KH - 1) - 1) // S + 1
    OW = (W + 2 * P - D * (KW - 1) - 1) // S + 1
    y = np.zeros((n, K, OH, OW))
    kg = K // G
    for k in range(K):
        g = k // kg
        for i in range(KH):
            for j in range(KW):
                patch = xp[:, g * cg:(g + 1) * cg, i * D:i * D + S * (OH - 1) + 1:S, j * D:j * D + S * (OW - 1) + 1:S]
                y[:, k] += np.einsum("nchw,c->nhw", patch, w[k, :, i, j])
    return y + b[None, :, None, None]


@pytest.mark.parametrize("C,K,KH,S,P,D,G,rows,H,W", [
    (1, 4, 5, 1, 0, 1, 1, "im2col", 9, 8), (4, 6, 3, 2, 1, 1, 2, "im2col", 9, 8), (8, 5, 3, 1, 1, 2, 1, "im2row", 9, 8),
    (6, 4, 3, 2, 2, 1, 1, "im2row", 9, 8), (5, 7, 1, 1, 0, 1, 1, "1x1", 9, 8), (6, 4, 1, 1, 0, 3, 2, "1x1", 9, 8),
    (130, 129, 1, 1, 0, 1, 1, "1x1", 8, 8),        # the weight gradient as one GEMM over all pixels
    (7, 5, 1, 1, 0, 1, 1, "1x1-nhwc", 5, 7), (6, 5, 1, 2, 0, 1, 1, "1x1-strided", 15, 14),
    (6, 4, 1, 2, 0, 1, 2, "1x1-strided", 14, 16), (5, 7, 1, 3, 0, 2, 1, "1x1-strided", 22, 23),
    (130, 129, 1, 2, 0, 1, 1, "1x1-strided", 14, 13),     # the weight gradient as one GEMM
    (16, 5, 1, 2, 0, 1, 1, "im2row", 7, 8),               # 16 outputs: too few for 1x1-strided
    (5, 5, 3, 1, 1, 1, 5, "depthwise", 17, 16),          # 272 outputs: past depthwise-nhwc's
    (4, 4, 3, 2, 2, 2, 4, "depthwise", 9, 8), (16, 5, 3, 1, 1, 1, 1, "winograd4", 9, 8),
    (17, 3, 3, 1, 2, 1, 1, "winograd4", 7, 6), (16, 4, 3, 1, 0, 1, 1, "winograd4", 11, 10),
    (64, 65, 3, 1, 1, 1, 1, "winograd4", 28, 29), (64, 64, 3, 1, 1, 1, 1, "winograd4", 27, 29),
    (256, 256, 3, 1, 1, 1, 1, "winograd", 9, 8),      # F(2x2, 3x3): many channels, a small plane
    (16, 6, 5, 1, 2, 1, 1, "winograd4", 9, 8),         # F(4x4, 5x5)
    (20, 7, 5, 1, 0, 1, 1, "winograd4", 12, 12),       # no padding, 8x8 outputs (LeNet's conv2's planes)
    (20, 6, 5, 1, 0, 1, 1, "winograd4", 13, 14),       # no padding, 9x10 outputs: tiles past the image
    (16, 16, 3, 1, 1, 1, 1, "direct", 9, 11), (8, 32, 3, 1, 0, 1, 1, "direct", 10, 9),      # few channels
    (16, 16, 3, 1, 1, 1, 1, "direct", 7, 32), (32, 32, 3, 1, 1, 1, 1, "direct", 5, 16),   # blocks of a row:
    (16, 32, 3, 2, 1, 1, 1, "direct", 9, 16),          # 16 positions 16 numbers apart, 8 positions 32 apart
    (8, 48, 3, 2, 1, 1, 1, "direct", 13, 14), (20, 32, 3, 3, 1, 1, 1, "direct", 17, 16),    # strides
    (3, 64, 7, 2, 3, 1, 1, "direct", 15, 16), (12, 16, 4, 2, 1, 1, 1, "direct", 12, 13),
    (6, 6, 3, 1, 1, 1, 6, "depthwise-nhwc", 7, 6), (5, 5, 3, 2, 1, 1, 5, "depthwise-nhwc", 9, 8),
    (4, 4, 5, 1, 2, 1, 4, "depthwise-nhwc", 5, 7), (3, 3, 3, 1, 0, 1, 3, "depthwise-nhwc", 8, 9),
    (1, 6, 5, 1, 0, 1, 1, "planes", 7, 21), (3, 5, 3, 1, 1, 1, 1, "planes", 6, 17),     # few channels, rows of 16+
    (4, 9, 5, 1, 2, 1, 1, "planes", 5, 34)])
@pytest.mark.parametrize("chunked", [False, True])
def test_conv2d_against_numpy(C, K, KH, S, P, D, G, rows, H, W, chunked, monkeypatch):
    if chunked:                  # the others take every image at once whatever the size
        monkeypatch.setattr(chunks, "CHUNK_BYTES", 1)
        monkeypatch.setattr(chunks, "WHOLE_BYTES", 0)
    rng = np.random.default_rng(C * 10 + K)
    n = 3
    x = rng.standard_normal((n, C, H, W))
    w = rng.standard_normal((K, C // G, KH, KH))
    b = rng.standard_normal(K)
    y_ref = ref_conv(x, w, b, S, P, D, G)
    OH, OW = y_ref.shape[2:]
    shape = (n, C, H, W, K, KH, KH, OH, OW, G, rows, np.float64)
    scratch = conv2d_scratch(*shape)
    assert not set(scratch) & set(conv2d_workspace(*shape))
    assert not chunked or rows not in ("im2row", "im2col", "winograd", "winograd4") or conv2d_workspace(*shape) == {}
    ws = {k: np.zeros(s, np.float64) for k, (s, _) in {**conv2d_workspace(*shape), **scratch}.items()}

    def spoil():        # scratch carries nothing from one call to the next (the executor shares it)
        for k in scratch:
            ws[k][...] = np.nan
    assert conv2d_algorithm(C, H, W, K, KH, KH, S, S, P, P, D, D, G) == rows
    geometry = (KH, KH, S, S, P, P, D, D, G, rows)
    y = np.full((n, K, OH, OW), np.nan)
    spoil()
    done = []

    def after(a, b_):             # images a..b_ are final when it is called (a chain runs on them)
        np.testing.assert_allclose(y[a:b_], y_ref[a:b_], rtol=1e-10, atol=1e-10)
        done.append((a, b_))
    conv2d_forward(y, x, w, b, ws, *geometry, after=after)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    assert [a for a, _ in done] == [0] + [b_ for _, b_ in done[:-1]] and done[-1][1] == n
    dy = rng.standard_normal(y.shape)
    eps = 1e-6                                        # gradients: directional finite differences
    dx, dw, db = np.full_like(x, np.nan), np.full_like(w, 0.5), np.full_like(b, 0.25)   # dx: written
    spoil()
    conv2d_backward(dx, dw, db, dy, x, w, ws, *geometry, False)
    for arr, grad, base in ((x, dx, 0.0), (w, dw, 0.5), (b, db, 0.25)):
        v = rng.standard_normal(arr.shape)
        arr += eps * v
        up = (ref_conv(x, w, b, S, P, D, G) * dy).sum()
        arr -= 2 * eps * v
        down = (ref_conv(x, w, b, S, P, D, G) * dy).sum()
        arr += eps * v
        assert ((grad - base) * v).sum() == pytest.approx((up - down) / (2 * eps), rel=1e-6)
    conv2d_forward(y, x, w, b, ws, *geometry)
    dw2 = np.full_like(w, 7.0)
    spoil()
    conv2d_backward(None, dw2, None, dy, x, w, ws, *geometry, True)      # fresh: written, not added
    np.testing.assert_allclose(dw2, dw - 0.5, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("C,K,KH,S,P,G,rows", [(8, 5, 3, 1, 1, 1, "im2row"), (6, 4, 3, 2, 2, 1, "im2row"),
                                                (4, 6, 3, 2, 1, 2, "im2col"), (1, 4, 5, 1, 0, 1, "im2col")])
@pytest.mark.parametrize("forward_bytes", [1, None])
@pytest.mark.parametrize("columns", [False, True])
def test_conv2d_forward_alone_in_chunks(C, K, KH, S, P, G, rows, forward_bytes, columns, monkeypatch):
    """A forward whose patches no backward reads (keeps=False: a net that only infers) goes in
    chunks of FORWARD_BYTES, in its scratch alone, and computes the same convolution; "im2row"
    also through columns of all the images of a chunk (conv2d._columns_forward: small planes,
    many weights)."""
    if forward_bytes is not None:        # one image a chunk
        monkeypatch.setattr(chunks, "FORWARD_BYTES", forward_bytes)
    if columns:
        monkeypatch.setattr(conv2d, "COLUMNS_WEIGHTS", 1)
        monkeypatch.setattr(conv2d, "COLUMNS_PIXELS", 10 ** 6)
    rng = np.random.default_rng(C + 7 * K)
    n, H, W = 3, 9, 8
    x, w, b = rng.standard_normal((n, C, H, W)), rng.standard_normal((K, C // G, KH, KH)), rng.standard_normal(K)
    y_ref = ref_conv(x, w, b, S, P, 1, G)
    OH, OW = y_ref.shape[2:]
    ws = {k: np.full(s, np.nan) for k, (s, _) in
          conv2d_scratch(n, C, H, W, K, KH, KH, OH, OW, G, rows, np.float64, keeps=False).items()}
    y = np.full(y_ref.shape, np.nan)
    done = []
    conv2d_forward(y, x, w, b, ws, KH, KH, S, S, P, P, 1, 1, G, rows, after=lambda a, b_: done.append((a, b_)),
                   keeps=False)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-10)
    assert done == ([(0, 1), (1, 2), (2, 3)] if forward_bytes == 1 else [(0, 3)])


def test_im2row_forwards_that_keep_nothing_take_columns_on_small_planes_with_many_weights():
    """ResNet-50's 3x3 on 512 channels of 7x7 in a net that only infers, on several images: one
    GEMM on the weights as they are; not with a backward, not for one image, not on 8x8 planes,
    not with fewer weights."""
    w = np.zeros((512, 512, 3, 3), np.float32)
    assert conv2d._columns_forward(4, 49, w, keeps=False)
    assert not conv2d._columns_forward(4, 49, w, keeps=True) and not conv2d._columns_forward(1, 49, w, False)
    assert not conv2d._columns_forward(4, 64, w, False) and not conv2d._columns_forward(4, 49, w[:64], False)


def test_forward_chunks_follow_the_patches_size():
    """Without a backward: one image a chunk where an image's patches pass FORWARD_BYTES
    (ResNet-50's conv1), the whole call where they fit (its 3x3 on 512 channels of 7x7); with
    a backward, the kept patches stay whole up to WHOLE_BYTES."""
    conv1 = (4, 3, 224, 224, 64, 7, 7, 112, 112, 1, "im2row", 4)
    res5 = (4, 512, 7, 7, 512, 3, 3, 7, 7, 1, "im2row", 4)
    assert patch_chunks(*conv1, keeps=False) == ((0, 1), (1, 2), (2, 3), (3, 4))
    assert patch_chunks(*conv1) == ((0, 4),)
    assert patch_chunks(*res5, keeps=False) == ((0, 4),)


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("transpose", [False, True])
def test_inner_product_against_numpy(transpose, tiled, monkeypatch):
    rng = np.random.default_rng(3)
    M, K, N = 5, 7, 4
    if tiled:                  # tiles of 2 rows: 4 rows (or 7) in 2 (or 4) tiles
        monkeypatch.setattr(inner_product, "TILE_ELEMENTS", 1)
        monkeypatch.setattr(inner_product, "TILE_ROWS", 2)
        assert len(inner_product.weight_tiles(K if transpose else N, N if transpose else K)) > 1
    x, W, b = rng.standard_normal((M, K)), rng.standard_normal((N, K)), rng.standard_normal(N)
    w = W.T.copy() if transpose else W
    y, yt = np.empty((M, N)), np.empty((N, M))
    inner_product_forward(y, x, w, b, yt, transpose)
    np.testing.assert_allclose(y, x @ W.T + b, rtol=1e-12)
    dy = rng.standard_normal((M, N))
    dx, dw, db = np.empty_like(x), np.ones_like(w), np.ones_like(b)
    inner_product_backward(dx, dw, db, dy, x, w, np.full_like(w, np.nan), transpose, False)
    np.testing.assert_allclose(dx, dy @ W, rtol=1e-12)
    np.testing.assert_allclose(dw - 1, (dy.T @ x).T if transpose else dy.T @ x, rtol=1e-12)
    np.testing.assert_allclose(db - 1, dy.sum(axis=0), rtol=1e-12)
    dw2 = np.full_like(w, 7.0)
    inner_product_backward(None, dw2, None, dy, x, w, np.full_like(w, np.nan), transpose, True)     # fresh
    np.testing.assert_allclose(dw2, dw - 1, rtol=1e-12)


@pytest.mark.parametrize("S", [1, 2, 3, 4, 5, 8, 16])
def test_combine_shares_is_a_fixed_pairwise_tree(S):
    """The combination of per-share gradients: a fixed pairwise tree in float32, whatever slices
    it runs on (so whatever the thread count)."""
    from netcli.ops.cpu.shares import combine_shares
    g = np.random.default_rng(S).standard_normal((S, 1000)).astype(np.float32)
    v = [g[s].copy() for s in range(S)]
    step = 1
    while step < S:                                   # ((g0 + g1) + (g2 + g3)) + ...
        for a in range(0, S - step, 2 * step):
            v[a] = v[a] + v[a + step]
        step *= 2
    for cuts in ([0, 1000], [0, 1, 333, 334, 1000]):
        base, scratch = g[0].copy(), g[1:].copy()
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            combine_shares(base, scratch, lo, hi)
        assert np.array_equal(base, v[0]) and (scratch == 0).all()


@pytest.mark.parametrize("C,K,KH,S,P,G,rows,H,W", [
    (16, 20, 3, 2, 1, 1, "im2col", 17, 18),          # patches in tiles of channels, GEMM in tiles of positions
    (16, 100, 3, 2, 1, 1, "im2col", 9, 8),           # GEMM in tiles of output channels
    (24, 18, 3, 2, 1, 2, "im2col", 17, 16),          # groups: each group's GEMM in tiles
    (40, 20, 3, 2, 1, 1, "im2row", 19, 18),          # each tile of positions makes its own rows
    (40, 50, 3, 2, 1, 1, "im2row", 7, 9),            # tiles of output channels
    (20, 40, 1, 1, 0, 1, "1x1-nhwc", 5, 5), (20, 24, 1, 1, 0, 1, "1x1", 9, 10),
    (16, 12, 3, 1, 1, 1, "winograd4", 17, 18),       # weights, inputs, GEMMs and outputs in tiles
    (16, 12, 3, 1, 0, 1, "winograd", 11, 12), (18, 10, 5, 1, 2, 1, "winograd4", 19, 17)])
def test_one_image_in_tiles_against_numpy(C, K, KH, S, P, G, rows, H, W, monkeypatch):
    """One image (batch-1 inference): its GEMM, and where they are long its patches (Winograd:
    its weight, input and output transforms), go in ONE_IMAGE_TILES tiles the threads take
    (thresholds lowered so that small shapes tile); the output against the reference, and
    after_tile told each tile once, covering the output."""
    from netcli.ops.cpu import conv2d
    from netcli.exec import threads
    monkeypatch.setattr(conv2d, "TILED_MACS", 0)
    monkeypatch.setattr(conv2d, "PATCH_ROWS", 0)
    calls = []
    real = threads.tiles
    monkeypatch.setattr(threads, "tiles", lambda fn, count: (calls.append(count), real(fn, count)))
    rng = np.random.default_rng(C + K)
    x, w = rng.standard_normal((1, C, H, W)), rng.standard_normal((K, C // G, KH, KH))
    y_ref = ref_conv(x, w, np.zeros(K), S, P, 1, G)
    OH, OW = y_ref.shape[2:]
    shape = (1, C, H, W, K, KH, KH, OH, OW, G, rows, np.float64)      # the algorithm named, whatever the rule says
    ws = {k: np.full(s, np.nan) for k, (s, _) in {**conv2d_workspace(*shape), **conv2d_scratch(*shape)}.items()}
    for bias in (None, rng.standard_normal(K)):
        y, seen = np.full((1, K, OH, OW), np.nan), np.zeros((K, OH * OW), int)
        told = []

        def after_tile(a, tile):
            k0, k1, p0, p1 = tile
            seen[k0:k1, p0:p1] += 1
            told.append(tile)
        calls.clear()
        conv2d_forward(y, x, w, bias, ws, KH, KH, S, S, P, P, 1, 1, G, rows, after=lambda a, b: told.append("all"),
                       after_tile=after_tile)
        want = y_ref + (0 if bias is None else bias[None, :, None, None])
        np.testing.assert_allclose(y, want, rtol=1e-10, atol=1e-10)
        winograd = rows.startswith("winograd")
        assert calls == [4] * ((rows == "im2col") + (G if rows in ("im2col", "1x1") else 1) + 3 * winograd)
        if bias is None and G == 1:                  # the chain's tiles: each output once
            assert (seen == 1).all() and len(told) == 4 * (len(calls) - (rows == "im2col") - 3 * winograd)
        else:
            assert told == ["all"]


def test_large_1x1_layers_on_small_planes_take_one_gemm_over_the_images():
    """1x1 layers of 2^20 weights or more on planes under 64 pixels, on more than one image, go
    through one GEMM on the images' rows (conv2d_rule._one_gemm): ResNet-50's last stage."""
    def rule(C, H, K, S, images):
        return conv2d_algorithm(C, H, H, K, 1, 1, S, S, 0, 0, 1, 1, 1, images=images)
    assert rule(2048, 7, 512, 1, 8) == rule(512, 7, 2048, 1, None) == "1x1-nhwc"
    assert rule(2048, 7, 512, 1, 1) == "1x1"                  # one image: its own GEMM
    assert rule(512, 7, 512, 1, 8) == rule(1024, 8, 1024, 1, 8) == "1x1"     # fewer weights; 64 pixels
    assert rule(1024, 14, 2048, 2, 8) == "im2row"             # 7x7 outputs of a stride
    assert rule(1024, 14, 512, 2, 8) == rule(1024, 14, 2048, 2, 1) == "1x1-strided"
