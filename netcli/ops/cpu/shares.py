"""The sum of the gradient shares that the update reads (the update rules themselves live in
netcli/update_rules/, one module each)."""
from numba import njit


@njit(cache=True, nogil=True)
def combine_shares(base, scratch, lo, hi):
    """For j in [lo, hi): base[j] = the pairwise tree sum over shares of (base[j], scratch[0, j],
    ..., scratch[S-2, j]) -- ((g0+g1)+(g2+g3))+... in one fixed order whatever the slice -- and
    scratch[:, j] = 0. Blocks of 256 elements, one tree level at a time (vectorised over j)."""
    S = scratch.shape[0] + 1
    B = 256
    for b0 in range(lo, hi, B):
        b1 = min(b0 + B, hi)
        step = 1
        while step < S:
            for a in range(0, S - step, 2 * step):
                src = scratch[a + step - 1]
                if a == 0:
                    for j in range(b0, b1):
                        base[j] += src[j]
                else:
                    dst = scratch[a - 1]
                    for j in range(b0, b1):
                        dst[j] += src[j]
            step *= 2
        for r in range(S - 1):
            row = scratch[r]
            for j in range(b0, b1):
                row[j] = 0.0
