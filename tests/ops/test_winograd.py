"""Winograd F(2x2, 3x3), F(4x4, 3x3) and F(4x4, 5x5) (netcli/ops/cpu/winograd.py, winograd_transforms.py) against the
plain NumPy reference convolution (tests/reference.py) on random inputs: odd and even sizes (not
multiples of the tile), padding 0-2 (also different down and across), several images, float32
and float64; forward, the input gradient and the weight and bias gradients (+= and fresh)."""
import numpy as np
import pytest

from netcli.ops.cpu import chunks, winograd, winograd_transforms
from netcli.ops.cpu.winograd import (winograd_backward, winograd_fits, winograd_forward, winograd_scratch,
                                    winograd_workspace)
from reference import conv2d, deconv2d

CASES = [  # n, C, H, W, K, PH, PW
    (3, 5, 7, 9, 4, 1, 1),
    (2, 3, 8, 8, 6, 0, 0),
    (1, 4, 5, 6, 3, 2, 2),
    (2, 2, 6, 3, 5, 2, 0),
    (4, 1, 3, 4, 2, 1, 1),
    (2, 6, 11, 10, 7, 1, 1),
    (1, 3, 13, 9, 2, 0, 2),
    (9, 1, 4, 3, 2, 1, 1),       # more images than a team job's tiles: groups of 1 and 2 (winograd_team.py)
]


def test_winograd_fits_3x3_and_5x5_stride_1_without_groups():
    assert winograd_fits(3, 3, 1, 1, 1, 1, 1, 1, 1) and winograd_fits(3, 3, 1, 1, 2, 0, 1, 1, 1)
    assert winograd_fits(5, 5, 1, 1, 2, 2, 1, 1, 1) and winograd_fits(5, 5, 1, 1, 4, 0, 1, 1, 1)
    for geometry in [(3, 3, 2, 2, 1, 1, 1, 1, 1), (3, 3, 1, 1, 1, 1, 2, 2, 1), (3, 3, 1, 1, 1, 1, 1, 1, 2),
                     (5, 5, 1, 1, 5, 2, 1, 1, 1), (3, 3, 1, 1, 3, 1, 1, 1, 1), (3, 1, 1, 1, 1, 0, 1, 1, 1),
                     (7, 7, 1, 1, 3, 3, 1, 1, 1), (5, 3, 1, 1, 2, 1, 1, 1, 1)]:
        assert not winograd_fits(*geometry), geometry


@pytest.mark.parametrize("m,k", [(2, 3), (4, 3), (2, 5), (4, 5)])
def test_toom_cook_matrices_compute_a_correlation(m, k):
    """A^T [(G g) . (B^T d)] = the m outputs of d (m + k - 1 values) correlated with g (k), in
    one dimension (the 2-D transforms apply it down and across); exact for integers."""
    BT, G, AT = winograd_transforms.toom_cook(m, k)
    rng = np.random.default_rng(m * 10 + k)
    for _ in range(5):
        d, g = rng.integers(-9, 10, m + k - 1).astype(np.float64), rng.integers(-9, 10, k).astype(np.float64)
        assert np.array_equal(np.round(AT @ ((G @ g) * (BT @ d)), 9), [d[i:i + k] @ g for i in range(m)])
    assert BT.shape == (m + k - 1, m + k - 1) and G.shape == (m + k - 1, k) and AT.shape == (m, m + k - 1)


@pytest.mark.parametrize("key", sorted(winograd_transforms.ROWS))
def test_rows_functions_apply_toom_cooks_matrices(key):
    """Each written-out transform loop (ROWS) computes its toom_cook matrix times the rows it
    reads, from rows anywhere in x to rows anywhere in y, and writes nothing else (run as Python
    here; compiled, they are the transforms of test_winograd_against_reference)."""
    matrix, m, k = key
    BT, G, AT = winograd_transforms.toom_cook(m, k)
    T = {"BT": BT, "AT": AT, "A": AT.T}[matrix]
    rng = np.random.default_rng(len(matrix) * 100 + m * 10 + k)
    n, (outs, ins) = 13, T.shape
    x = rng.standard_normal(ins * n + 7).astype(np.float32)
    xo, yo = rng.permutation(ins) * n + 2, rng.permutation(outs) * n
    y = np.full(outs * n + 9, np.nan, np.float32)
    winograd_transforms.ROWS[key](x, 3, xo, y, 4, yo, n)
    want = T @ np.stack([x[3 + o:3 + o + n] for o in xo]).astype(np.float64)
    got = np.stack([y[4 + o:4 + o + n] for o in yo])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    written = np.zeros(y.shape, bool)
    for o in yo:
        written[4 + o:4 + o + n] = True
    assert np.isnan(y[~written]).all()


@pytest.mark.parametrize("m,k", [(2, 3), (4, 3), (4, 5)])
@pytest.mark.parametrize("split", ["whole", "blocks", "floor", "chunks"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_winograd_against_reference(case, dtype, split, m, k, monkeypatch):
    """blocks: the images of a call go through the transforms and GEMMs one at a time (as
    ResNet-20's first stage does, 4 images at a time), the weight gradient summed over the
    blocks; floor: blocks of equal size (but for one image) that the tiles' floor sets
    (BLOCK_TILES, here 1.5 images' tiles: blocks of 2 images at most, of 1 and 2 for 3); chunks: the
    images go through one at a time (as VGG's large layers do), V is scratch
    and the backward transforms the input again. 5x5 kernels get one more row and column of
    padding (the same output sizes)."""
    n, C, H, W, K, PH, PW = case
    PH, PW = PH + (k - 3) // 2, PW + (k - 3) // 2
    if split == "blocks":
        monkeypatch.setattr(winograd, "BLOCK_BYTES", 1)
        monkeypatch.setattr(winograd, "BLOCK_TILES", 1)
        assert len(winograd._blocks(0, n, 1000, 4, 256, 256)) == n
    if split == "floor":
        tiles = int(np.prod(winograd.winograd_tiles(H + 2 * PH - k + 1, W + 2 * PW - k + 1, m)))
        monkeypatch.setattr(winograd, "BLOCK_BYTES", 1)
        monkeypatch.setattr(winograd, "BLOCK_CHANNELS", 1)
        monkeypatch.setattr(winograd, "BLOCK_TILES", tiles * 3 // 2)
    if split == "chunks":
        monkeypatch.setattr(chunks, "CHUNK_BYTES", 1)
        monkeypatch.setattr(chunks, "WHOLE_BYTES", 0)
        assert len(winograd.winograd_chunks(n, C, H, W, K, H + 2 * PH - k + 1, W + 2 * PW - k + 1, 4, m, k)) == n
    rng = np.random.default_rng(sum(case))
    x, w, b = rng.standard_normal((n, C, H, W)), rng.standard_normal((K, C, k, k)), rng.standard_normal(K)
    OH, OW = H + 2 * PH - k + 1, W + 2 * PW - k + 1
    scratch = winograd_scratch(n, C, H, W, K, OH, OW, dtype, m, k)
    ws = {name: np.full(s, np.nan, dt) for name, (s, dt) in
          {**winograd_workspace(n, C, H, W, K, OH, OW, dtype, m, k), **scratch}.items()}

    def spoil():        # scratch carries nothing from one call to the next (the executor shares it)
        for name in scratch:
            ws[name][...] = np.nan
    ws["no_bias"] = np.zeros(0, dtype)

    def close(got, want):       # float32's error grows with the sums' size: against the largest value
        tol = dict(rtol=0, atol=2e-5 * np.abs(want).max()) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(got, want, **tol)

    def ref(x, w):
        return conv2d(x, w, None, pad=(PH, PW))
    x32, w32, b32 = x.astype(dtype), w.astype(dtype), b.astype(dtype)
    y = np.full((n, K, OH, OW), np.nan, dtype)
    winograd_forward(y, x32, w32, None, ws, PH, PW, m)
    close(y, ref(x, w))
    winograd_forward(y, x32, w32, b32, ws, PH, PW, m)
    close(y, ref(x, w) + b[None, :, None, None])

    dy = rng.standard_normal(y.shape)
    dx, dw, db = np.full(x.shape, np.nan, dtype), np.full(w.shape, 0.5, dtype), np.full(b.shape, 0.25, dtype)
    spoil()
    winograd_backward(dx, dw, db, dy.astype(dtype), x32, w32, ws, PH, PW, False, m)
    # the adjoints, from the reference: <ref(x, w), dy> is linear in x and in w
    ref_dx = np.array([np.sum(ref(e.reshape(x.shape), w) * dy) for e in np.eye(x.size)]).reshape(x.shape)
    ref_dw = np.array([np.sum(ref(x, e.reshape(w.shape)) * dy) for e in np.eye(w.size)]).reshape(w.shape)
    close(dx, ref_dx)
    close(dw, ref_dw + 0.5)
    close(db, dy.sum(axis=(0, 2, 3)) + 0.25)
    dw2, db2 = np.full(w.shape, 7.0, dtype), np.full(b.shape, 7.0, dtype)     # fresh: written
    spoil()
    winograd_backward(None, dw2, db2, dy.astype(dtype), x32, w32, ws, PH, PW, True, m)
    close(dw2, ref_dw)
    close(db2, dy.sum(axis=(0, 2, 3)))


def test_blocks_of_a_chunk_are_even_and_gemm_bound_ones_hold_enough_tiles():
    """A block's images: 1 MB of transformed arrays; from BLOCK_CHANNELS channels in and out,
    enough images for BLOCK_TILES tiles (GEMMs of that many rows) within MAX_BLOCK_BYTES; the
    blocks of a chunk of equal size but for one image."""
    per_image = 16 * 49 * 256 * 4                   # ResNet-50's 256 ch 14x14, F(2x2): 49 tiles, 0.8 MB
    assert winograd._blocks(0, 8, per_image, 49, 256, 256) == ((0, 8),)
    assert winograd._blocks(0, 8, per_image, 49, 64, 256) == tuple((i, i + 1) for i in range(8))
    assert winograd._blocks(3, 20, per_image, 49, 256, 256) == ((3, 8), (8, 14), (14, 20))
    wide = 36 * 196 * 64 * 4                         # 64 ch 56x56, F(4x4): 196 tiles, 1.8 MB
    assert winograd._blocks(0, 4, wide, 196, 64, 64) == tuple((i, i + 1) for i in range(4))
    huge = 16 * 49 * 4096 * 4                        # 12.8 MB: one image, floor or not
    assert winograd._blocks(0, 3, huge, 49, 4096, 4096) == ((0, 1), (1, 2), (2, 3))
    small = 36 * 4 * 64 * 4                          # ResNet-20's 64 ch 8x8: 27 images to 1 MB
    assert winograd._blocks(0, 32, small, 4, 64, 64) == ((0, 16), (16, 32))
    scratch = winograd_scratch(20, 256, 14, 14, 256, 14, 14, np.float32, 2, 3, keeps=False)
    assert scratch["M"][0] == (16, 7 * 49, 256) and scratch["V"][0] == (16, 7 * 49, 256)   # 6, 7 and 7 images


def test_winograd_chunks_keep_cifar_and_resnet50_calls_whole_and_take_vgg_images_one_at_a_time():
    assert winograd.winograd_chunks(32, 16, 32, 32, 16, 32, 32, 4) == ((0, 32),)       # ResNet-20's first stage
    assert winograd.winograd_chunks(50, 64, 8, 8, 64, 8, 8, 4) == ((0, 50),)
    assert winograd.winograd_chunks(16, 64, 224, 224, 64, 224, 224, 4) == tuple((i, i + 1) for i in range(16))
    assert winograd.winograd_chunks(16, 64, 56, 56, 64, 56, 56, 4) == ((0, 16),)     # ResNet-50's, 51 MB: whole
    chunks = winograd.winograd_chunks(16, 64, 56, 56, 192, 56, 56, 4)               # GoogLeNet's conv2, 154 MB
    assert len(chunks) == 10 and chunks[-1][1] == 16 and max(b - a for a, b in chunks) == 2
    assert winograd_workspace(16, 64, 224, 224, 64, 224, 224, np.float32) == {}
    assert "V" in winograd_scratch(16, 64, 224, 224, 64, 224, 224, np.float32)


def test_f4x4_is_chosen_but_for_many_channels_on_small_planes():
    from netcli.ops.cpu.conv2d_rule import conv2d_algorithm

    def algorithm(C, H, K, images):
        return conv2d_algorithm(C, H, H, K, 3, 3, 1, 1, 1, 1, 1, 1, 1, images=images)
    assert algorithm(48, 16, 48, 32) == algorithm(64, 8, 64, 32) == algorithm(64, 56, 64, 1) == "winograd4"
    assert algorithm(128, 14, 128, 16) == algorithm(512, 28, 512, 4) == algorithm(64, 224, 64, 1) == "winograd4"
    assert algorithm(256, 14, 256, 16) == algorithm(512, 14, 512, 8) == algorithm(256, 16, 512, 32) == "winograd"
    assert (algorithm(64, 8, 64, 1), algorithm(3, 32, 16, 32)) == ("im2row", "planes")     # too few tiles, 3 channels
    assert algorithm(128, 28, 128, 1) == algorithm(64, 20, 64, 1) == "winograd4"     # one image, large enough
    assert algorithm(256, 14, 256, 1) == "im2col"                          # one image, many outputs
    assert algorithm(48, 28, 48, 1) == algorithm(64, 19, 64, 1) == algorithm(64, 19, 127, 1) == "im2row"


def test_f4x4_5x5_is_chosen_for_5x5_kernels_with_padding_2_or_0():
    from netcli.ops.cpu.conv2d_rule import conv2d_algorithm

    def algorithm(C, H, K, pad, images):
        return conv2d_algorithm(C, H, H, K, 5, 5, 1, 1, pad, pad, 1, 1, 1, images=images)
    assert algorithm(32, 16, 32, 2, 100) == algorithm(16, 8, 24, 2, 32) == algorithm(16, 28, 32, 2, 16) == "winograd4"
    assert algorithm(20, 12, 50, 0, 64) == algorithm(20, 12, 50, 0, 16) == "winograd4"    # LeNet's conv2
    assert algorithm(32, 16, 32, 2, 1) == algorithm(20, 12, 50, 1, 64) == "im2row"      # batch 1; padding 1
    assert algorithm(3, 32, 32, 2, 100) == "planes"              # cifar10_quick's first layer


def test_only_the_transforms_written_out_run():
    """F(2x2, 5x5) has no output transform here (its 6x6 tiles would take F(4x4, 3x3)'s): refused."""
    x, y = np.zeros((1, 2, 6, 6), np.float32), np.zeros((1, 2, 6, 6), np.float32)
    ws = {name: np.zeros(s, d) for name, (s, d) in {**winograd_workspace(1, 2, 6, 6, 2, 6, 6, np.float32, 4, 5),
                                                    **winograd_scratch(1, 2, 6, 6, 2, 6, 6, np.float32, 4, 5)}.items()}
    with pytest.raises(ValueError, match="F.2x2, 5x5"):
        winograd_forward(y, x, np.zeros((2, 2, 5, 5), np.float32), None, ws, 2, 2, 2)


@pytest.mark.parametrize("m", [2, 4])
def test_one_image_in_tiles_gives_the_same_bits(m):
    """conv2d.py runs a one-image call's weight transform (blocks of input channels) and GEMMs
    (blocks of tile positions) in tiles: the same numbers, whichever blocks."""
    rng = np.random.default_rng(m)
    n, C, H, W, K = 1, 13, 9, 11, 6
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((n, C, H, W), (K, C, 3, 3), (K,)))
    shapes = {**winograd_workspace(n, C, H, W, K, H, W, np.float32, m),
              **winograd_scratch(n, C, H, W, K, H, W, np.float32, m)}
    outs = []
    for tiled in (None, lambda fn, count: [fn(count * j // 3, count * (j + 1) // 3) for j in (2, 0, 1)]):
        ws = {k: np.full(s, np.nan, d) for k, (s, d) in shapes.items()}
        y = np.full((n, K, H, W), np.nan, np.float32)
        winograd_forward(y, x, w, b, ws, 1, 1, m, None, tiled)
        outs.append(y)
    assert np.isfinite(outs[0]).all() and np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("tiled", [False, True])
@pytest.mark.parametrize("m,k", [(2, 3), (4, 3), (4, 5)])
def test_a_forward_that_keeps_nothing_gives_the_same_bits_through_a_block_of_v(m, k, tiled, monkeypatch):
    """Where no backward reads V (winograd_scratch(keeps=False): a net that only infers), V holds
    one block, which each block's transform overwrites: the same numbers as the forward that keeps
    V for the backward; in blocks of one image, and for one image in tiles (conv2d.py)."""
    monkeypatch.setattr(winograd, "BLOCK_BYTES", 1)
    monkeypatch.setattr(winograd, "BLOCK_TILES", 1)
    rng = np.random.default_rng(m + k)
    n, C, H, W, K = (1 if tiled else 3), 5, 9, 11, 6
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in ((n, C, H, W), (K, C, k, k), (K,)))
    P = (k - 1) // 2
    kept = {**winograd_workspace(n, C, H, W, K, H, W, np.float32, m, k),
            **winograd_scratch(n, C, H, W, K, H, W, np.float32, m, k)}
    inference = winograd_scratch(n, C, H, W, K, H, W, np.float32, m, k, keeps=False)
    assert kept["V"][0][1] == n * inference["V"][0][1]           # the tiles of n images, of one
    split = (lambda fn, count: [fn(count * j // 3, count * (j + 1) // 3) for j in (2, 0, 1)]) if tiled else None
    outs = []
    for shapes, keeps in ((kept, True), (inference, False)):
        ws = {name: np.full(s, np.nan, d) for name, (s, d) in shapes.items()}
        y = np.full((n, K, H, W), np.nan, np.float32)
        winograd_forward(y, x, w, b, ws, P, P, m, None, split, None, keeps)
        outs.append(y)
    np.testing.assert_allclose(outs[0], conv2d(x, w, None, pad=(P, P)) + b[None, :, None, None], rtol=1e-4, atol=1e-4)
    assert np.array_equal(outs[0], outs[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("m,k", [(2, 3), (4, 3), (4, 5)])
@pytest.mark.parametrize("shape", [(2, 11, 13, 19, 9), (1, 16, 10, 17, 24), (3, 8, 8, 8, 8), (1, 9, 32, 32, 24)])
def test_channels_and_columns_in_blocks_of_eight(shape, m, k, dtype):
    """Images with 8 channels and columns or more go through the transforms' layout changes in
    8 x 8 blocks (transpose.py), the channels and columns past the last block one by one; 24
    output planes of 32x32 (4 KB apart and more) back through a row buffer instead
    (transpose.aliased): forward, input and weight gradients against the reference."""
    n, C, H, W, K = shape
    P = (k - 1) // 2
    rng = np.random.default_rng(C * W + k)
    x, w, b = rng.standard_normal((n, C, H, W)), rng.standard_normal((K, C, k, k)), rng.standard_normal(K)
    ws = {name: np.full(s, np.nan, d) for name, (s, d) in
          {**winograd_workspace(n, C, H, W, K, H, W, dtype, m, k), **winograd_scratch(n, C, H, W, K, H, W, dtype, m, k)}.items()}
    def close(got, want):       # float32's error grows with the sums' size: against the largest value
        scale = np.abs(want).max()
        np.testing.assert_allclose(got, want, rtol=0, atol=(2e-5 if dtype == np.float32 else 1e-12) * scale)
    y = np.full((n, K, H, W), np.nan, dtype)
    winograd_forward(y, x.astype(dtype), w.astype(dtype), b.astype(dtype), ws, P, P, m)
    close(y, conv2d(x, w, b, pad=(P, P)))
    dy = rng.standard_normal(y.shape)
    dx, dw, db = np.full(x.shape, np.nan, dtype), np.zeros(w.shape, dtype), np.zeros(b.shape, dtype)
    winograd_backward(dx, dw, db, dy.astype(dtype), x.astype(dtype), w.astype(dtype), ws, P, P, True, m)
    close(dx, deconv2d(dy, w, None, pad=(P, P)))
    xp = np.pad(x, ((0, 0), (0, 0), (P, P), (P, P)))
    ref_dw = np.array([[[[np.sum(dy[:, o] * xp[:, c, i:i + H, j:j + W]) for j in range(k)] for i in range(k)]
                        for c in range(C)] for o in range(K)])
    close(dw, ref_dw)
