"""The shares' parameter gradients summed as they finish, by the same pairwise tree as
ops.cpu.shares.combine_shares, so that fewer partials are held at once.

combine_shares sums the S shares' partials at the end of a pass: step 1 adds node 1 into node 0,
3 into 2, ...; step 2 adds 2 into 0, 6 into 4, ...; node 0 is the params' own diff, node s > 0 a
row of the executor's scratch. Every element gets the same additions in the same order, so the
bits do not depend on when an addition runs, only on which: here a thread that has run every
share under a node adds that node's children as soon as the last of them finishes (a node takes
its children in step order: the smaller subtrees first), and only the additions between different
threads' shares wait for the end of the pass (in the tree's order, each thread a slice of the
params). A node's partial lives in a scratch row from its share's start until it is added into
its parent: a thread running b shares in a row holds at most log2(b) + 1 rows, not b. Rows are
assigned per thread (no two threads share one) from the thread blocks alone; the rows never
written take no memory (np.zeros).
"""
from __future__ import annotations

import heapq
from functools import lru_cache

import numpy as np


def tree_pairs(S):
    """combine_shares's additions in its order: (node, child, end of the node's subtree)."""
    out, step = [], 1
    while step < S:
        out.extend((a, a + step, min(a + 2 * step, S)) for a in range(0, S - step, 2 * step))
        step *= 2
    return out


@lru_cache(maxsize=64)
def schedule(S, blocks):
    """For S shares run by threads over `blocks` ((first, stop) per thread, in order): (row[s]: the
    scratch row of share s's partial, -1 for share 0: the params' diff; after[s]: the additions
    (node, child) its thread makes once share s is done; final: the rest, in the tree's order;
    the number of rows used)."""
    owner = {s: t for t, (f, e) in enumerate(blocks) for s in range(f, e)}
    after, final = {s: [] for s in range(S)}, []
    for a, b, end in tree_pairs(S):
        (after[end - 1] if owner[a] == owner[end - 1] else final).append((a, b))
    row, used = {0: -1}, 0
    for f, e in blocks:
        free, top = [], used
        for s in range(f, e):
            if s:
                if free:
                    row[s] = heapq.heappop(free)
                else:
                    row[s], top = top, top + 1
            for _, b in after[s]:
                heapq.heappush(free, row[b])
        used = top
    return tuple(row[s] for s in range(S)), {s: tuple(v) for s, v in after.items()}, tuple(final), used


def add_child(base, scratch, row, a, b, lo=0, hi=None):
    """Node a += node b over elements lo..hi, and node b's row back to zero."""
    hi = base.size if hi is None else hi
    dst = base if row[a] < 0 else scratch[row[a]]
    src = scratch[row[b]]
    np.add(dst[lo:hi], src[lo:hi], out=dst[lo:hi])
    src[lo:hi] = 0
