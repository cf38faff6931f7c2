"""Flush-to-zero and denormals-are-zero for the calling thread (x86 MXCSR bits 15 and 6), as
`torch.set_flush_denormal(True)` does. Once a softmax saturates, back-propagated gradients and some
weights fall into float32's subnormal range, where every operation on them (BLAS included) takes
microcode assists: LeNet under RMSProp slowed from 58 to 15 iterations/s. They carry nothing a
float32 net can use. On other architectures this is a no-op."""
import platform

from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

X86 = platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


@intrinsic
def _mxcsr_set_ftz_daz(typingctx):
    def codegen(context, builder, signature, args):
        from llvmlite import ir
        i32, i8p = ir.IntType(32), ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [i8p])
        stmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.stmxcsr")
        ldmxcsr = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.sse.ldmxcsr")
        slot = cgutils.alloca_once(builder, i32)
        ptr = builder.bitcast(slot, i8p)
        builder.call(stmxcsr, [ptr])
        builder.store(builder.or_(builder.load(slot), ir.Constant(i32, 0x8040)), slot)
        builder.call(ldmxcsr, [ptr])
        return context.get_dummy_value()
    return types.void(), codegen


@njit(cache=True)
def _enable():
    _mxcsr_set_ftz_daz()


def flush_denormals():
    """Enable FTZ/DAZ in the calling thread (x86 only); returns whether it did."""
    if X86:
        _enable()
    return X86
