"""``precision: auto``: bfloat16 where the hardware computes it, float32 elsewhere.

A CPU with AVX512_BF16 or AMX-BF16 (``/proc/cpuinfo`` flags) and a GPU of compute capability 8.0 or
higher run bfloat16 matrix products natively; elsewhere bfloat16 is emulated and slower than
float32. TensorFlow is imported only to ask about a GPU, and only when it is already loaded.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "float32", "mixed_bfloat16")
#: CPU flags of native bfloat16 matrix products (x86: AVX-512 BF16, AMX)
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


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


def gpu_bfloat16() -> bool | None:
    """Whether the first visible GPU computes bfloat16 natively; None without a GPU (or without TensorFlow)."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return None
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return None
    capability = tf.config.experimental.get_device_details(gpus[0]).get("compute_capability") or (0, 0)
    return tuple(capability) >= (8, 0)


def resolve_precision(requested: str, flags: frozenset[str] | None = None, gpu: bool | None = None) -> tuple[str, str]:
    """The Keras dtype policy for ``requested`` on this machine, and why (for logs and MLflow)."""
    if requested not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {requested!r}")
    flags = cpu_flags() if flags is None else flags
    native = sorted(flags & BF16_CPU_FLAGS)
    if gpu is not None:
        hardware = "the GPU computes bfloat16" if gpu else "the GPU has no native bfloat16 (compute capability < 8.0)"
        has_bf16 = gpu
    else:
        hardware = f"this CPU has {', '.join(native)}" if native else "this CPU has no AVX512_BF16 or AMX-BF16"
        has_bf16 = bool(native)
    if requested == "auto":
        return ("mixed_bfloat16" if has_bf16 else "float32"), f"auto: {hardware}"
    if requested == "mixed_bfloat16" and not has_bf16:
        logger.warning(f"precision mixed_bfloat16 was asked for, but {hardware}: bfloat16 is emulated and slower "
                       "than float32 here (precision: auto picks float32 on this machine)")
    return requested, f"set in params ({hardware})"
