"""The copies both Winograd variants (winograd.py's F(2x2, 3x3), winograd4.py's F(4x4, 3x3)) make
around their transforms: an image plane into a zero-padded plane and back out, and a row of
tiles between a transformed array (E, channels, tiles) and a 2-D buffer (E, tiles of the row).
Inlined into the kernels that call them."""
from numba.extending import register_jitable


@register_jitable(inline="always")
def copy_into(src, dst, top, left):
    """dst[top + h, left + w] = src[h, w] for every (h, w) of src that lands inside dst."""
    for h in range(min(src.shape[0], dst.shape[0] - top)):
        row = dst[top + h, left:min(dst.shape[1], src.shape[1] + left)]
        srow = src[h]
        for w in range(row.shape[0]):
            row[w] = srow[w]


@register_jitable(inline="always")
def store_rows(tmp, A, ch, t0):
    """A[e, ch, t0 + t] = tmp[e, t] for every e and t of tmp."""
    for e in range(tmp.shape[0]):
        dst, trow = A[e, ch, t0:t0 + tmp.shape[1]], tmp[e]
        for t in range(trow.shape[0]):
            dst[t] = trow[t]


@register_jitable(inline="always")
def load_rows(A, ch, t0, tmp):
    """tmp[e, t] = A[e, ch, t0 + t] for every e and t of tmp."""
    for e in range(tmp.shape[0]):
        src, trow = A[e, ch, t0:t0 + tmp.shape[1]], tmp[e]
        for t in range(trow.shape[0]):
            trow[t] = src[t]
