"""``precision: auto``: bfloat16 where the hardware computes it, float16 on GPUs with tensor cores
but no bfloat16, float32 elsewhere.

A CPU with AVX512_BF16 or AMX-BF16 (``/proc/cpuinfo`` flags) and a GPU of compute capability 8.0 or
higher run bfloat16 matrix products natively; a GPU of compute capability 7.x (V100, T4) runs float16
ones (``mixed_float16``: Keras then scales the loss so that small gradients survive); elsewhere both
are emulated and slower than float32. TensorFlow is imported only to ask about a GPU, and only when it
is already loaded.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
#: CPU flags of native bfloat16 matrix products (x86: AVX-512 BF16, AMX)
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})
#: the lowest GPU compute capabilities with native float16 (tensor cores) and bfloat16 matrix products
FLOAT16_GPU, BFLOAT16_GPU = (7, 0), (8, 0)


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The first CPU's feature flags (empty where ``/proc/cpuinfo`` does not exist)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")):
            return frozenset(line.partition(":")[2].split())
    return frozenset()


def gpu_capability() -> tuple[int, int] | None:
    """The first visible GPU's compute capability; None without a GPU (or without TensorFlow)."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    return tuple(tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0))


def resolve_precision(requested: str, flags: frozenset[str] | None = None,
                      gpu: tuple[int, int] | None = None) -> tuple[str, str]:
    """The Keras dtype policy for ``requested`` on this machine (``gpu``: the GPU's compute capability,
    None without one), and why (for logs and MLflow)."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    flags = cpu_flags() if flags is None else flags
    native = sorted(flags & BF16_CPU_FLAGS)
    if gpu is not None:
        shown = ".".join(map(str, gpu))
        has_bf16, has_f16 = tuple(gpu) >= BFLOAT16_GPU, tuple(gpu) >= FLOAT16_GPU
        hardware = (f"the GPU (compute capability {shown}) computes "
                    + ("bfloat16 and float16" if has_bf16 else "float16, not bfloat16" if has_f16 else "neither bfloat16 nor float16"))
    else:
        has_bf16, has_f16 = bool(native), False
        hardware = f"this CPU has {', '.join(native)}" if native else "this CPU has no AVX512_BF16 or AMX-BF16"
    if requested == "auto":
        policy = "mixed_bfloat16" if has_bf16 else "mixed_float16" if has_f16 else "float32"
        return policy, f"auto: {hardware}"
    if requested == "mixed_bfloat16" and not has_bf16:
        logger.warning(f"precision mixed_bfloat16 was asked for, but {hardware}: bfloat16 is emulated and slower "
                       "than float32 here (precision: auto picks what this machine computes natively)")
    if requested == "mixed_float16" and not has_f16:
        logger.warning(f"precision mixed_float16 was asked for, but {hardware}: float16 is emulated and slower "
                       "than float32 here (precision: auto picks what this machine computes natively)")
    return requested, f"set in params ({hardware})"
