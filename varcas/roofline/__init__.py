"""varcas.roofline: the one model of the hardware every part of varcas uses.

What a GPU allows for a model: FLOPs, bytes and arithmetic intensity of prefill and decode,
per operator and per phase, theoretical and realistic times, KV-cache capacity, decode
throughput against batch size, large grids (numba), and the time of one continuous-batching
step for the simulator. No other module carries hardware numbers.

    from varcas import roofline
    hw = roofline.hardware("t4")
    m = roofline.model("llama-2-7b", quant="awq")
    roofline.decode(hw, m, batch=8, context=2048).realistic_time_s
    roofline.step_time_s(hw, m, [(512, 0)], [700, 1300])
    roofline.kernel_report(hw, roofline.read_ncu("kernels.csv"))  # Nsight Compute kernels

Formulas and sources: formulas.py (FLOPs/bytes), analysis.py (time model, capacity),
models.py (parameters, quantization), gpus.py (GPU table, efficiency defaults),
ncu.py (measured kernels: the ncu CSV layout, FLOP weights, kernel classes).
"""
from .analysis import (
                       DEFAULT_BLOCK_SIZE,
                       DEFAULT_GPU_MEMORY_UTILIZATION,
                       DecodeSweep,
                       MemoryReport,
                       OpResult,
                       PhaseResult,
                       StepCost,
                       decode,
                       decode_sweep,
                       memory,
                       phase,
                       phase_table,
                       prefill,
                       step_cost,
                       step_time_s,
                       vllm_batch_defaults,
)
from .formulas import FEATURES, Coefficients, Operator, coefficients, operators
from .gpus import GPU, Hardware, gpu, hardware, known_gpus
from .grids import GridResult, grid, grid_reference
from .models import (
                       Model,
                       ModelConfig,
                       Precision,
                       known_models,
                       load_config,
                       model,
                       precision,
)
from .ncu import KernelReport, classify, kernel_report, read_ncu
from .static import Static, kernel_roofline, static

__all__ = [
    "DEFAULT_BLOCK_SIZE", "DEFAULT_GPU_MEMORY_UTILIZATION", "FEATURES", "GPU", "Coefficients",
    "DecodeSweep", "GridResult", "Hardware", "KernelReport", "MemoryReport", "Model", "ModelConfig", "OpResult",
    "Operator", "PhaseResult", "Precision", "Static", "StepCost", "classify", "coefficients", "decode", "decode_sweep",
    "gpu", "grid", "grid_reference", "hardware", "kernel_report", "kernel_roofline", "known_gpus", "known_models",
    "load_config", "memory", "model", "operators", "phase", "phase_table", "precision", "prefill", "read_ncu",
    "static", "step_cost",
    "step_time_s", "vllm_batch_defaults",
]
