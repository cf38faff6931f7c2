"""Caffe's `caffe device_query`: what netcli can compute on here. The CPU (model, cores, the SIMD
extensions Numba compiles the kernels for, the threads netcli will use) and the CUDA GPUs when
the gpu extra and a driver are present (name, compute capability, memory), else why there are
none. Also the meaning of `--gpu all`."""
from __future__ import annotations

import os
import platform

from ..errors import NetcliError

# LLVM's feature names (what Numba targets) -> the names users know, in this order
SIMD = (("sse4.2", "SSE4.2"), ("avx", "AVX"), ("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512F"),
        ("avx512bw", "AVX-512BW"), ("avx512vl", "AVX-512VL"), ("avx512vnni", "AVX-512VNNI"),
        ("avx512bf16", "AVX-512BF16"), ("neon", "NEON"), ("sve", "SVE"), ("sve2", "SVE2"))


def cpu():
    """{model, arch, cores, usable_cores, simd: [...], llvm_cpu, threads}."""
    from ..exec.threads import count, usable_cores
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "cpu model") and value.strip():
                    model = value.strip()
                    break
    except OSError:
        pass
    simd, llvm_cpu = [], None
    try:
        import llvmlite.binding as llvm
        llvm_cpu = llvm.get_host_cpu_name()
        features = llvm.get_host_cpu_features()
        simd = [shown for name, shown in SIMD if features.get(name, False)]
    except (ImportError, RuntimeError):
        pass
    return {"model": model or platform.processor() or platform.machine() or "unknown", "arch": platform.machine(),
            "cores": os.cpu_count() or 1, "usable_cores": usable_cores(), "simd": simd, "llvm_cpu": llvm_cpu,
            "threads": count()}


def gpus(only=None):
    """([{id, name, compute_capability, memory_bytes}], None) of the CUDA devices (`only`: that
    number), or ([], why there are none)."""
    from ..gpu.device import NoGpu, cuda_module, simulated
    try:
        cuda = cuda_module()
    except NoGpu as e:
        return [], f"{e.reason} (pip install 'netcli[gpu]')"
    if not cuda.is_available():
        return [], "no NVIDIA driver or CUDA device found"
    found = []
    for i, g in enumerate(cuda.gpus):
        if only is not None and i != only:
            continue
        with g:
            dev = cuda.get_current_device()
            name = getattr(dev, "name", "CUDA device")
            name = name.decode() if isinstance(name, bytes) else str(name)
            cc = getattr(dev, "compute_capability", None)
            try:
                memory = int(cuda.current_context().get_memory_info()[1])
            except Exception:        # the simulator has no memory to report
                memory = None
        found.append({"id": i, "name": name + (" (simulated)" if simulated() else ""),
                      "compute_capability": ".".join(map(str, cc)) if cc else None, "memory_bytes": memory})
    if only is not None and not found:
        raise NetcliError(f"GPU {only}: this machine has {len(cuda.gpus)} CUDA device(s), numbered 0 to "
                          f"{len(cuda.gpus) - 1}")
    return found, None


def query(gpu=None, echo=print):
    """Print what `netcli device-query` shows and return it as {cpu, gpus, no_gpu}; gpu: a
    device number to show alone (None or "all": every one)."""
    c = cpu()
    echo(f"CPU: {c['model']} ({c['arch']}{', LLVM target ' + c['llvm_cpu'] if c['llvm_cpu'] else ''})")
    echo(f"  cores: {c['cores']} ({c['usable_cores']} usable by this process)")
    echo(f"  SIMD: {', '.join(c['simd']) or 'none detected'}")
    echo(f"  threads netcli will use: {c['threads']} (--threads N or NETCLI_THREADS=N to change)")
    found, why = gpus(None if gpu in (None, "all") else gpu)
    if why:
        echo(f"GPUs: none ({why}); netcli runs on the CPU")
    for g in found:
        mem = f", {g['memory_bytes'] / 2 ** 30:.1f} GiB" if g["memory_bytes"] else ""
        cc = f", compute capability {g['compute_capability']}" if g["compute_capability"] else ""
        echo(f"GPU {g['id']}: {g['name']}{cc}{mem}")
    return {"cpu": c, "gpus": found, "no_gpu": why}


def resolve_gpu(value):
    """A --gpu value: a device number as given, or "all" (Caffe's -gpu all): every GPU. netcli
    runs on one GPU per process, so "all" is GPU 0 on a machine with one, and one clear line
    otherwise."""
    if value != "all":
        return value
    found, why = gpus()
    if why:
        from ..gpu.device import NoGpu
        raise NoGpu(f"--gpu all: {why}")
    if len(found) > 1:
        raise NetcliError(f"--gpu all: netcli runs on one GPU per process for now, and this machine has "
                          f"{len(found)}; give one with --gpu N (netcli device-query lists them)")
    return 0
