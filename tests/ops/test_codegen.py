"""ops/codegen.py: Numba compiles netcli's kernels preferring 512-bit vectors where the CPU has
AVX-512, and leaves a user's own NUMBA_CPU_NAME / NUMBA_CPU_FEATURES alone."""
import os
import subprocess
import sys

from netcli.ops.codegen import NARROW_TUNING, wide_features


def test_the_features_take_the_256_bit_preference_off_only_with_avx512():
    assert wide_features("+64bit,+avx,+avx2,+fma,-avx512f") is None
    wide = wide_features("+64bit,+avx2,+avx512f,+avx512bw")
    assert wide == "+64bit,+avx2,+avx512f,+avx512bw,-" + NARROW_TUNING
    assert wide_features("+avx512f,+" + NARROW_TUNING) == "+avx512f,-" + NARROW_TUNING     # (never both)


def test_numba_compiles_with_the_cpus_features_unless_the_user_chose():
    """The code generator Numba made (once, before netcli's first kernel) has the CPU's features,
    less the 256-bit preference where it has AVX-512. (Numba's config may have been read again
    from the environment since, which the code generator does not see.)"""
    import llvmlite.binding as llvm
    from numba.core.registry import cpu_target
    import netcli.ops  # noqa: F401
    if os.environ.get("NUMBA_CPU_NAME") or os.environ.get("NUMBA_CPU_FEATURES"):
        return                                  # the user's choice: nothing of ours to check
    host = llvm.get_host_cpu_features().flatten()
    codegen = cpu_target.target_context.codegen()
    assert codegen._tm_features == (wide_features(host) or host)
    assert codegen.magic_tuple()[1] == llvm.get_host_cpu_name()      # (a key of Numba's cache)


def test_a_users_numba_cpu_settings_are_kept():
    code = ("import netcli.ops; from numba.core import config; "
            "print(config.CPU_NAME, config.CPU_FEATURES)")
    env = {**os.environ, "NUMBA_CPU_NAME": "generic", "NUMBA_CPU_FEATURES": "+sse2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["generic", "+sse2"]
