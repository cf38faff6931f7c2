"""Which of the convolution kernels (netcli/ops/cpu/conv2d.py) a layer runs: a fixed rule on the
layer's shape, with the measurements it was made from."""
from __future__ import annotations

from .depthwise_nhwc import depthwise_nhwc_fits
from .direct import direct_fits, direct_positions
from .planes import planes_fits
from .winograd import winograd_fits

ALGORITHMS = ("depthwise", "depthwise-nhwc", "1x1", "1x1-nhwc", "1x1-strided", "winograd", "winograd4", "direct",
              "planes", "im2row", "im2col")
WINOGRAD_TILE = {"winograd": 2, "winograd4": 4}      # algorithm: m of F(m x m, k x k)
# the algorithms whose work threads beyond a run's shares can help with (exec/team.py): Winograd's
# blocks (winograd_team.py), per-image GEMMs (image_gemms.py: with one group), the rows layout's
# GEMMs in blocks of columns (image_gemms.gemm_columns), all with numpy's GEMM reachable (blas.py);
# and the depthwise kernels (depthwise_team.py)
GEMM_TEAM_ALGORITHMS = (*WINOGRAD_TILE, "1x1", "1x1-strided", "im2col", "1x1-nhwc", "im2row")
DEPTHWISE_ALGORITHMS = ("depthwise", "depthwise-nhwc")
KERNEL_TEAM_ALGORITHMS = (*DEPTHWISE_ALGORITHMS, "direct")   # their own kernels in team jobs, no GEMM
STRIDED_1X1_PIXELS = 49       # "1x1-strided" from this many output pixels on (conv2d_algorithm)
PIXELS_1X1 = 36               # "1x1" (else "1x1-nhwc") from this many pixels per image on
ROWS_1X1_PIXELS, ROWS_1X1_WEIGHTS = 64, 2 ** 20    # but one GEMM on rows under 64 pixels, from 1M weights
NHWC_POSITIONS = 256          # "depthwise-nhwc" up to this many output positions
ONE_IMAGE_CHANNELS, ONE_IMAGE_PIXELS = 64, 400      # 3x3 Winograd whatever the batch from here on
ONE_IMAGE_COLUMNS_K = 128     # im2col, not im2row, for one image from this many output channels on
DIRECT_CHANNELS = (8, 32)     # "direct" with stride 1 on this many input and at most as many output channels
DIRECT_TERMS = 64             # "direct" with a stride where each sum has this many terms (C*KH*KW) or more
PLANES_CHANNELS = 4           # "planes" (3x3 and 5x5, stride 1) on at most this many input channels


def conv2d_algorithm(C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, group, images=None):
    """The algorithm for a layer of this shape: a fixed rule (never a timing at run time, so the
    results are the same on every run). The measurements behind it: bench/conv_algorithms.py,
    speedups over the GEMM path as forward / backward, ranges over 3-4 runs (AMD EPYC Zen 3, one
    thread, shares of 32 images, best of 3-7 rounds; noisy: a shared 2-core machine under load).
    - depthwise whenever group == C == K: a direct kernel instead of one 1 x KH*KW GEMM per
      channel and image; 3x3 pad 1: 32 ch 32x32 4.1-5.3x / 3.3-5.6x, 128 ch 16x16 3.1-4.9x /
      3.9-4.7x, 256 ch 8x8 2.4-4.5x / 2.4-3.2x, 512 ch 4x4 1.4-3.4x / 1.2-1.8x; 64 ch 32x32
      stride 2 2.0x / 1.9-2.1x. "depthwise-nhwc" (the same sums, channels last) where the output
      plane has at most NHWC_POSITIONS = 256 positions, against "depthwise" (32 images, one
      thread, AMD EPYC Zen 5, best of 3, shared machine; forward / backward): 1024 ch 2x2 11x /
      19x, 512 ch 4x4 4.7x / 6.7x, 512 ch 8x8 stride 2 4.4x / 3.6x, 256 ch 8x8 1.4x / 2.3x, 256 ch
      16x16 stride 2 1.4x / 2.3x. With a stride its use up to 256 positions was measured there,
      "depthwise"'s phase split being slow (32 images, one thread, AMD EPYC Zen 5, best of 10;
      forward / input gradient / weight gradient): 64 ch 32x32 stride 2 2.1x / 2.5x / 5.2x, 32 ch
      2.7x / 2.5x / 5.0x, 128 ch 1.0x / 1.8x / 4.9x. Without a stride it took 64 positions until
      its 3x3 sums ran in vectors held in registers (depthwise_vectors.py); since then (50 images,
      one thread, Intel Xeon model 207, median of 5, two runs; forward / backward): 128 ch 16x16
      1.4x / 1.5-1.7x, 64 ch 16x16 1.6-1.7x / 1.9-2.1x, 32 ch 16x16 1.8x / 2.6x, 256 ch 16x16 1.0x
      / 1.4x, 128 ch 12x12 1.8x / 2.4x, 96 ch 20x20 1.3x / 1.6x; larger planes stay with
      "depthwise" (32 ch 32x32 0.82x / 1.14x, 64 ch 32x32 0.71x / 0.70x, 32 ch 64x64 0.66x /
      0.89x; 8 images of 64 ch 112x112 stride 2 0.46x / 0.44x / 1.3x on AMD). Since then both
      forwards run 3x3 kernels with stride 1 or 2 and 8 output columns or more in vectors along
      the NCHW rows (depthwise_rows.py, the same bits), so that there the choice is the
      backward's; their forward time before -> after, 50 images, one thread, Intel Xeon (model
      207), ms: "depthwise" 32 ch 32x32 1.17 -> 0.69, 64 ch 32x32 stride 2 5.6 -> 0.80;
      "depthwise-nhwc" 128 ch 16x16 1.39 -> 0.59-0.67, stride 2 0.64-0.75 -> 0.49-0.51, 256 ch
      8x8 0.81-0.87 -> 0.49-0.52 (on 4 output columns the rows lose: 256 ch 8x8 stride 2 0.39-0.44
      against 0.69).
    - a 1x1 kernel with stride 1 and no padding (any dilation is the same kernel) needs no patch
      copy: "1x1" (GEMMs per image on the NCHW input) from PIXELS_1X1 = 36 pixels per image on
      (32->64 at 32x32: 2.7-3.0x / 1.4-1.8x; 64->128 and 128->128 at 16x16: 1.9-2.5x /
      1.1-1.3x; 256->256 at 8x8: 1.8x / 1.1-1.5x), "1x1-nhwc" (one GEMM on a channels-last copy)
      below that, where per-image GEMMs of 25, 16 or 4 columns run at 0.3-0.9x of it (1x1-nhwc:
      0.8-1.3x / 0.9-1.2x of im2row, about im2row less its patch copy). Between them, "1x1"
      time / "1x1-nhwc" time, forward / backward, one thread, AMD EPYC Zen 4, best of 3 (images
      per call): ResNet-50's 7x7 512->2048 0.83x / 1.09x and 2048->512 0.74x / 1.02x (8), and
      forward 0.86x and 0.60x (1); 7x7 128->128 0.66x / 0.95x (32), 256->256 0.84x / 1.04x (16); 6x6
      256->256 0.87x / 1.08x (32), 0.85x / 1.08x (8); but 5x5 512->512 1.21x / 1.28x (32), 4x4
      512->512 1.15x (50), 2x2 1024->1024 2.4x (50). On an Intel Xeon (model 207) the large
      layers on 7x7 go the other way: "1x1-nhwc" where a layer has ROWS_1X1_WEIGHTS = 2^20
      weights or more (4 MB in float32, past a core's L2, which the per-image GEMMs read again
      for every image of 49 columns) on planes under ROWS_1X1_PIXELS = 64 pixels, with more
      than one image (`_one_gemm`). "1x1" time / "1x1-nhwc" time, forward / backward, one thread,
      best of 3 (images per call): ResNet-50's 7x7 2048->512 1.22x / 1.20x and 512->2048 1.16x /
      1.21x (8), 1.30x / 1.15x and 1.21x / 1.24x (32), 1024->2048 1.27x / 1.25x (32); but 0.84x /
      1.02x and 0.94x / 0.97x (1); 128 ch 7x7 0.67x / 0.99x, 256 ch 8x8 0.88x / 1.04x, 512 ch
      8x8 1.00x / 1.01x (32). ResNet-50 at batch 8, 2 threads: its 1x1 layers on 7x7 outputs
      52.4 -> 48.4 thread-ms a forward (38.8 -> 39.0 img/s).
    - a 1x1 kernel with a stride and no padding: "1x1-strided" (copy the pixels read, then
      "1x1") from STRIDED_1X1_PIXELS output pixels per image on, against im2row, stride 2, one
      thread, AMD EPYC Zen 5, best of 3, 16 images (1 image) per call, forward / backward:
      ResNet-20's 16->32 at 32x32 3.2x / 1.6x (2.3x / 1.1x), 32->64 at 16x16 1.7x / 1.0x (1.4x /
      0.85x: microseconds); ResNet-50's 256->512 and 256->128 at 56x56 2.9x / 1.3x and 5.8x /
      1.9x, 512->1024 at 28x28 2.2x / 1.1x, 1024->2048 and 1024->512 at 14x14 (49 outputs)
      1.6x / 0.96x and 3.3x / 1.2x (1 image: 2.3x / 1.1x, 3.7x / 1.3x). On 16 outputs or fewer it
      loses: 64->128 at 8x8 1.2x / 0.87x, 512->1024 at 4x4 0.40x / 0.46x. Under `_one_gemm`
      (Intel Xeon model 207, one thread, best of 3, "1x1-strided" time / im2row time): 1024->2048
      at 14x14 1.12x / 1.20x (8 images), 1.23x / 1.20x (32); 0.91x / 0.92x (1); 1024->512 (half
      the weights: "1x1-strided") 1.02x / 1.09x (8).
    - direct (direct.py: each output a sum over taps and channels in vector blocks held in
      registers, channels last) where it fits (no groups or dilation, output channels in vectors of
      16, a stride no larger than the kernel, padding under it, planes that fill its blocks;
      `_direct`): kernels with a stride whose sums have DIRECT_TERMS = 64 terms (C*KH*KW) or more,
      and 3x3 stride-1 kernels from 8..32 input channels to at most 32 (DIRECT_CHANNELS). Against
      the rule before it, forward / backward, one thread, Intel Xeon (model 207), best of 3, 32
      images (4 for the 7x7): ResNet-20's 16 ch 32x32 against F(4x4) 2.0x / 1.03x, 32 ch 16x16 1.14x
      / 0.91x, its downsampling 16->32 32x32 stride 2 against im2row 1.96x / 1.64x, 32->64 16x16
      1.54x / 1.37x; 64->128 32x32 stride 2 1.60x / 1.32x, 128 ch 56x56 stride 2 1.24x / 1.17x;
      ResNet-50's 7x7 stride-2 first layer 2.28x forward (its weight gradient 0.64x of im2row's, the
      input gradient of 3 channels far slower: a first layer needs none). In the nets, 2 threads, median of 5
      rounds in one run (bench/nets_vs_torch.py --against, row blocks included): ResNet-20 training
      1.20x, inference 1.17x, batch 1 1.35x; ResNet-56 1.16x / 1.13x / 1.34x; ResNet-50 (its first
      layer) 1.00x / 0.98x. With 32 channels too (stage 2) against 16 only, ResNet-20, one process, alternating:
      inference 28.2 against 29.9 ms, training even. Not taken: F(4x4) stays faster from 64 channels
      on (64 ch 8x8 0.93x / 0.86x, 128 ch 16x16 0.75x / 0.56x, 256 ch 8x8 0.33x / 0.46x) and on 5x5
      kernels (32 ch 16x16 0.89x / 0.56x; 16 ch 1.14x / 1.11x); with 3 input channels and stride 1,
      im2col (3->16 32x32: the same forward, a weight gradient 0.75x). Forward only, one thread,
      images per call, F(4x4) time / direct time: SqueezeNet's expand 3x3s 16->64 55x55 1.02x (4)
      and 0.99x (1), 32->128 27x27 0.71x (4), 32->64 27x27 0.82x (4): many outputs keep F(4x4); its
      3x3 stride-2 first layer on 3 channels (27 terms a sum), im2col time / direct time 0.91x (4
      images) and 0.56x (1): im2col (where ResNet-50's 7x7, 147 terms, gains 1.6x).
    - planes (planes.py: each output plane from the input planes shifted by each tap, in vectors
      of positions along the rows) for 3x3 and 5x5 stride-1 kernels on up to PLANES_CHANNELS = 4
      input channels (first layers) and rows of 16 outputs or more. Against the rule before it
      (im2col), one thread, Intel Xeon (model 207), best of 5, 32 images, forward / weight
      gradient / input gradient: LeNet's conv1 1->20 5x5 28x28 2.0x / 1.15x / 0.51x (a first
      layer needs no input gradient), padded 2.8x / 1.3x / 0.67x; cifar10_quick's 3->32 5x5 pad 2
      32x32 2.5x / 1.8x / 0.78x; ResNet-20's 3->16 3x3 pad 1 3.4x / 1.6x / 1.04x; 4->16 3.2x /
      1.5x / 2.3x.
    - winograd (F(2x2, 3x3), netcli/ops/cpu/winograd.py) for 3x3 stride-1 kernels without
      dilation or groups, padding <= 2, from 16 input channels and 8x8 outputs on, where it
      measured faster than im2row: 16 ch 32x32 1.2-1.7x / 1.1-1.5x, 32 ch 16x16 1.05-1.8x /
      0.9-1.1x, 64 ch 8x8 0.9-1.6x / 1.0-1.1x, 64 ch 32x32 1.8-2.1x / 1.5x, 128 ch 16x16
      1.7-1.8x / 1.7-1.8x, 256 ch 8x8 1.1x / 1.3x; not on 3 input channels (0.4-0.6x /
      0.2-0.3x: its GEMMs have 3 rows) and not measured on outputs under 8x8. Its 16 GEMMs have
      one column per 2x2 output tile of every image of a call: with few images they are too
      narrow (one image, best of 5, AMD EPYC Zen 5: 16 ch 32x32 1.06x / 0.98x, 64 ch 32x32
      1.28x / 1.26x, 32 ch 16x16 0.73x / 0.77x, 128 ch 16x16 0.88x / 0.91x, 64 and 256 ch
      8x8 0.34-0.36x / 0.40x; ResNet-20 at batch 1: 2.2 ms without Winograd, 2.8-3.3 ms with),
      so it needs 256 tiles per call, counting the images of a call as min(images, 16):
      `images` is the batch (None: large), and the CPU executor's shares hold at least 16
      images where the batch has them (netcli/exec/stretches.py, MIN_ROWS). But 3x3 kernels
      on ONE_IMAGE_PIXELS = 400 output pixels (20x20) and more with ONE_IMAGE_CHANNELS = 64
      input channels and more take Winograd whatever the batch: im2row time / F(4x4) time, one
      image, one thread, AMD EPYC Zen 4, best of 7: 64 ch 28x28 2.04x, 96->128 2.23x, 128
      2.29x, 128->192 2.03x, 256 1.95x, 64 ch 24x24 1.85x, 128 ch 20x20 1.76x (with 16 or 32
      channels 1.26x and 1.66x at 28x28; 128 ch 16x16 1.45x, 256 ch 14x14 0.89x). With one
      image its weight transform and GEMMs go in tiles (conv2d.py), as im2row's GEMM does:
      ResNet-50 at batch 1, 2 threads, its four 128-channel 28x28 layers 8.9 -> 5.1-5.9 ms (its
      256-channel 14x14 layers by F(2x2, 3x3) in tiles: 12.4 -> 14.6-17.0 ms, so not those);
      and its input and output transforms, in blocks of rows of tiles (ResNet-50 at batch 1:
      55.5-56.3 -> 54.7-55.5 ms a forward).
    - winograd4 (F(4x4, 3x3)) instead, but where both channel counts are at least 256 and the
      output plane has fewer than 28 x 28 pixels: its GEMMs do 2.25 multiplications per output
      instead of 4, and with the channels-last transforms (winograd_transforms.py, vectorised)
      it is the faster on most shapes; on 14x14 and 7x7 planes its 4x4 tiles run 31% past the
      image, and from 256 channels on, where the GEMMs are most of the time, that loses. F(2x2)
      time / F(4x4) time, forward / backward, one thread, AMD EPYC Zen 5, best of 3-5 (images
      per call): ResNet-20's 16 ch 32x32 1.28x / 1.30x, 32 ch 16x16 1.15x / 1.41x, 64 ch 8x8
      1.30x / 1.44x (32); 64 ch 16x16 1.66x / 1.78x, 128 ch 12x12 1.53x / 1.57x, 128 ch 14x14
      1.35x / 1.31x, 64 ch 14x14 1.22x / 1.40x (16); 64 ch 56x56 1.57x / 1.54x (4), 1.52x (1,
      forward); 64->192 56x56 1.49x / 1.56x (4); 128 ch 28x28 1.57x / 1.57x (16), 1.32x / 1.49x
      (4), 1.41x (1); 256 ch 28x28 1.25x / 1.34x (8); 512 ch 28x28 1.21x / 1.22x (4); 256 ch 56x56
      1.45x (2, forward); but 256 ch 14x14 0.93x / 1.03x (16), 0.96x / 0.91x (8), 0.67x (1),
      512 ch 14x14 0.74x / 0.76x (4), 512 ch 7x7 0.86x / 0.87x (8). With 16-32 channels and 1-16
      images the two are even (16 ch 32x32 0.96x with 1 image, 1.01x / 1.06x with 4; 32 ch
      16x16 1.07x / 1.12x with 4, 0.95x / 0.94x with 16).
    - 5x5 kernels with padding 2 (the output the input's size) or 0: Winograd, first F(2x2, 5x5) (36
      products for 4 outputs instead of 100), under the same bounds (16 channels, 8x8 outputs, 256 2x2
      tiles per call). Against im2row, forward / backward, one thread, AMD EPYC Zen 5, best of 3-5
      (images per call): cifar10_quick's 32 ch 16x16 2.22x / 1.76x and 32->64 8x8 2.11x / 1.73x
      (50); Inception-style 16 ch 16x16 2.49x / 2.12x, 24->48 16x16 2.29x / 1.63x, 16->24 8x8
      1.45x / 1.54x, 24->32 8x8 1.60x / 1.70x (32); GoogLeNet-style 16->32 28x28 2.20x / 1.91x,
      32->64 14x14 2.05x / 1.62x, 64 ch 16x16 2.27x / 2.06x (16); 32 ch 16x16 with 8 images
      1.85x / 2.11x, with 1 0.98x / 0.91x (64 tiles: im2row by the tiles bound). Also without
      padding since the transforms were written out (winograd_transforms.py; AMD EPYC Zen 4):
      LeNet's conv2 (20->50, 12x12 to 8x8) 1.47x / 1.04x (32), 1.63x / 1.03x (64), where it was
      1.18x / 0.73x (its input gradient pads dout by 4). Other paddings (1, 3, 4) are not
      measured: im2row. These layers take F(4x4, 5x5) ("winograd4": 64 products for 16 outputs
      instead of 400; its 8x8 transforms need the points +-1/2, whose coefficients are exact in
      float32, and its float32 error measured as F(2x2, 5x5)'s, a few units in the 6th digit).
      F(2x2, 5x5) time / F(4x4, 5x5) time, forward / weight gradient / input gradient, one
      thread, AMD EPYC Zen 4, best of 30 (images per call): LeNet's conv2 1.47x / 1.49x / 1.57x
      (32), 1.52x / 1.61x / 1.81x (64), and its input gradient 1.30x (32) and 1.44x (64) faster
      than im2row's (1.29-1.89x on 16-64 channels at 12x12 and 16x16 without padding);
      cifar10_quick's 2.05x / 2.10x / 1.84x and 1.62x / 1.60x / 1.59x (50); Inception-style 16
      ch 16x16 1.44x / 1.51x / 1.47x, 24->48 1.76x / 1.85x / 1.84x, 16->24 8x8 1.45x / 1.44x /
      1.28x, 24->32 8x8 1.40x / 1.52x / 1.42x (32); 16->32 28x28 1.64x / 1.63x / 1.69x, 32->64
      14x14 1.35x / 1.30x / 1.27x, 64 ch 16x16 1.77x / 1.80x / 1.77x (16); 32 ch 16x16 1.41x /
      1.52x / 1.43x (8).
    - otherwise the patch layout (patch_layout)."""
    if group == C == K:
        OH = (H + 2 * PH - DH * (KH - 1) - 1) // SH + 1
        OW = (W + 2 * PW - DW * (KW - 1) - 1) // SW + 1
        small = OH * OW <= NHWC_POSITIONS
        small = small and depthwise_nhwc_fits(KH, KW, PH, PW, DH, DW)
        return "depthwise-nhwc" if small else "depthwise"
    if KH == KW == 1 and SH == SW == 1 and PH == PW == 0:
        return "1x1" if H * W >= PIXELS_1X1 and not _one_gemm(H * W, C, K, images) else "1x1-nhwc"
    if C <= PLANES_CHANNELS and planes_fits(C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, group):
        return "planes"
    if _direct(C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, group):
        return "direct"
    pixels = ((H - 1) // SH + 1) * ((W - 1) // SW + 1)
    if KH == KW == 1 and PH == PW == 0 and pixels >= STRIDED_1X1_PIXELS and not _one_gemm(pixels, C, K, images):
        return "1x1-strided"
    OH, OW = H + 2 * PH - KH + 1, W + 2 * PW - KW + 1      # what winograd_fits leaves: stride 1
    tiles = min(16 if images is None else images, 16) * ((OH + 1) // 2) * ((OW + 1) // 2)
    if winograd_fits(KH, KW, SH, SW, PH, PW, DH, DW, group) and C >= 16 and OH >= 8 and OW >= 8 and \
            (tiles >= 256 or (KH == 3 and C >= ONE_IMAGE_CHANNELS and OH * OW >= ONE_IMAGE_PIXELS)):
        if KH == 5:
            return "winograd4" if PH == PW and PH in (0, 2) else patch_layout(C, KW, group, K, images)
        return "winograd" if min(C, K) >= 256 and OH * OW < 28 * 28 else "winograd4"
    return patch_layout(C, KW, group, K, images)


def _one_gemm(pixels, C, K, images):
    """Whether a 1x1 layer with this many output pixels per image runs as one GEMM over the
    images' rows (channels last) rather than a GEMM per image: a layer of ROWS_1X1_WEIGHTS
    weights or more on planes under ROWS_1X1_PIXELS pixels, on more than one image."""
    return pixels < ROWS_1X1_PIXELS and C * K >= ROWS_1X1_WEIGHTS and images != 1


def _direct(C, H, W, K, KH, KW, SH, SW, PH, PW, DH, DW, group):
    """Whether "direct" (direct.py) runs this layer: where direct_fits, on planes that fill its
    blocks, a kernel with a stride whose sums have DIRECT_TERMS terms or more (ResNet's
    downsampling 3x3s, a 7x7 first layer), and 3x3 kernels with stride 1 from and to
    DIRECT_CHANNELS channels (ResNet-20's first two stages)."""
    OH, OW = (H + 2 * PH - KH) // SH + 1, (W + 2 * PW - KW) // SW + 1
    if not (direct_fits(KH, KW, SH, SW, PH, PW, DH, DW, group, K) and direct_positions(H, W, OH, OW, SH, SW)):
        return False
    if SH * SW > 1:
        return C * KH * KW >= DIRECT_TERMS
    return KH == KW == 3 and DIRECT_CHANNELS[0] <= C <= DIRECT_CHANNELS[1] and K <= DIRECT_CHANNELS[1]


def patch_layout(C, KW, group, K=0, images=None):
    """The GEMM path every shape can take: im2row when a kernel row spans at least 16 floats
    (C*KW) and there are no groups, else im2col; and im2col for a batch of one image with
    ONE_IMAGE_COLUMNS_K output channels or more, where the column layout needs no reordered
    weights, no channels-last copies and no move of the GEMM's output. im2row time / im2col time,
    one image, one thread, AMD EPYC Zen 4, best of 7 (3x3 stride 1 unless said): ResNet-50's 512
    ch 7x7 1.31x, 256 ch 14x14 1.28x, 128 ch 28x28 stride 2 -> 256 1.19x, 64 ch 56x56 stride 2
    -> 128 0.97x; SqueezeNet's 32 -> 128 27x27 1.09x, 48 -> 192 13x13 1.11x, 64 -> 256 1.23x;
    256 -> 384 13x13 1.19x, 96 -> 256 5x5 27x27 1.13x; with fewer outputs 32 ch 16x16 0.76x, 32
    -> 64 32x32 stride 2 0.85x, 64 ch 8x8 and 16x16 1.02x and 0.95x (with 8 images, 512 ch 7x7:
    0.82x)."""
    if images == 1 and K >= ONE_IMAGE_COLUMNS_K:
        return "im2col"
    return "im2row" if group == 1 and C * KW >= 16 else "im2col"
