"""A GEMM called from compiled code (Numba, no GIL): the same BLAS function numpy's matmul calls,
reached by its address, so that a team of threads (exec/team.py) can run one share's GEMMs
without Python between them. numpy's Linux and macOS wheels bundle OpenBLAS with 64-bit
integers (`scipy_cblas_sgemm64_`); a build without such a function (a numpy linked to MKL or
to a system BLAS of 32-bit integers) leaves `gemm_address` at 0 and the callers on np.matmul.

For a product of more than one row and column, the bits are np.matmul's: it calls this function
with the same arguments (tests/ops/test_blas.py); it multiplies a matrix by a vector another way."""
from __future__ import annotations

import ctypes
import os

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

_SYMBOLS = {np.dtype(np.float32): ("scipy_cblas_sgemm64_", "cblas_sgemm64_"),
            np.dtype(np.float64): ("scipy_cblas_dgemm64_", "cblas_dgemm64_")}
_found: dict = {}


def _libraries():
    """The loaded OpenBLAS libraries, numpy's own first."""
    from threadpoolctl import threadpool_info
    paths = [i["filepath"] for i in threadpool_info() if i.get("internal_api") == "openblas"]
    return sorted(paths, key=lambda p: not os.path.basename(os.path.dirname(p)).startswith("numpy"))


def gemm_address(dtype):
    """The address of numpy's BLAS `cblas_?gemm` (64-bit integers) for float32 or float64; 0 where
    there is none (then callers use np.matmul)."""
    dtype = np.dtype(dtype)
    if dtype not in _found:
        _found[dtype] = 0
        for path in _libraries() if dtype in _SYMBOLS else ():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            for name in _SYMBOLS[dtype]:
                fn = getattr(lib, name, None)
                if fn is not None:
                    _found[dtype] = ctypes.cast(fn, ctypes.c_void_p).value
                    return _found[dtype]
    return _found[dtype]


ROW_MAJOR, NO_TRANS, TRANS = 101, 111, 112


def _gemm_call(like, beta):
    """(signature, codegen) of a cblas_?gemm call: C = beta * C + op(A) @ op(B), beta 0 or 1;
    None for an array that is not float32 or float64."""
    if not isinstance(like, types.Array) or like.dtype not in (types.float32, types.float64):
        return None

    def codegen(context, builder, sig, args):
        fn_, _, trans_a_, trans_b_, m_, n_, k_, a_, lda_, b_, ldb_, c_, ldc_ = args
        i32, i64 = ir.IntType(32), ir.IntType(64)
        real = ir.FloatType() if like.dtype == types.float32 else ir.DoubleType()
        ptr = real.as_pointer()
        fty = ir.FunctionType(ir.VoidType(), [i32, i32, i32, i64, i64, i64, real, ptr, i64, ptr, i64, real, ptr, i64])
        callee = builder.inttoptr(fn_, fty.as_pointer())

        def op(flag):
            return builder.select(builder.icmp_signed("!=", flag, ir.Constant(i64, 0)),
                                  ir.Constant(i32, TRANS), ir.Constant(i32, NO_TRANS))
        builder.call(callee, [ir.Constant(i32, ROW_MAJOR), op(trans_a_), op(trans_b_), m_, n_, k_,
                              ir.Constant(real, 1.0), builder.inttoptr(a_, ptr), lda_, builder.inttoptr(b_, ptr),
                              ldb_, ir.Constant(real, beta), builder.inttoptr(c_, ptr), ldc_])
        return context.get_dummy_value()
    return types.none(types.int64, like, *[types.int64] * 11), codegen


@intrinsic
def gemm(typingctx, fn, like, trans_a, trans_b, M, N, K, a, lda, b, ldb, c, ldc):
    """C (M, N) = op(A) @ op(B), row major, by the cblas_?gemm at address fn (like: an array of
    the dtype); a, b, c: the matrices' addresses; op(A) is A (M, K), or A^T for A (K, M) where
    trans_a; op(B) likewise, (K, N) or B^T for B (N, K)."""
    return _gemm_call(like, 0.0)


@intrinsic
def gemm_add(typingctx, fn, like, trans_a, trans_b, M, N, K, a, lda, b, ldb, c, ldc):
    """As gemm, but C (M, N) += op(A) @ op(B) (BLAS's beta = 1: each element of C plus its sum
    of products)."""
    return _gemm_call(like, 1.0)


@intrinsic
def at(typingctx, address, like):
    """The address as a pointer to like's dtype (for numba.carray)."""
    pointer = types.CPointer(like.dtype)

    def codegen(context, builder, sig, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))
    return pointer(types.int64, like), codegen


@njit(cache=True, nogil=True)
def address(a):
    """a's first element's address."""
    return np.int64(a.ctypes.data)
