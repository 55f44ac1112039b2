"""GPU facts in one place: which GPUs this machine has (detect_gpus), the names the serving hints use, the
datasheet table plan costs with, and the bf16 peaks the trainer measures MFU against.

    detect_gpus()                # Gpus(type='h100', count=8, name='NVIDIA H100 80GB HBM3')
    GPUS["h100"].peak_flops      # 989e12 (dense bf16)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from distill.core.errors import DistillError

# substrings of torch.cuda.get_device_name() -> the GPU names the serving hints use; most specific first
_GPU_NAMES = [
    ("gh200", "h200"), ("h200", "h200"), ("h100", "h100"), ("h800", "h100"), ("b200", "b200"), ("gb200", "b200"),
    ("a100-sxm4-40gb", "a100-40gb"), ("a100-pcie-40gb", "a100-40gb"), ("a100", "a100-80gb"), ("l40s", "l40s"),
]


@dataclass(frozen=True)
class Gpus:
    type: str | None  # the hint name (h100, h200, ...); None when there is no GPU or its name is unknown
    count: int
    name: str = ""  # what the driver calls it

    def describe(self) -> str:
        if not self.count:
            return "no GPU"
        return f"{self.count} x {self.name or self.type}"


def gpu_type_of(device_name: str) -> str | None:
    name = device_name.lower().replace(" ", "-")
    return next((short for key, short in _GPU_NAMES if key in name), None)


def detect_gpus() -> Gpus:
    """The CUDA GPUs this process can use (CUDA_VISIBLE_DEVICES applies); no torch import without a driver."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return Gpus(None, 0)
    try:
        import torch
    except ImportError:
        return Gpus(None, 0)
    if not torch.cuda.is_available():
        return Gpus(None, 0)
    name = torch.cuda.get_device_name(0)
    return Gpus(gpu_type_of(name), torch.cuda.device_count(), name)


@dataclass(frozen=True)
class GPU:
    peak_flops: float  # dense bf16 tensor FLOP/s (the datasheet's figure without 2:4 sparsity)
    memory_gb: float  # what `launch.gpu_memory_gb` takes (datasheet GB, treated as GiB like `distill sft`)
    hbm_tb_s: float  # memory bandwidth: what bounds decode throughput
    nvlink_gb_s: float  # one direction, per GPU, inside a node (PCIe where there is no NVLink)
    source: str


# Datasheet figures (dense bf16; NVIDIA quotes "with sparsity" numbers at twice these).
GPUS: dict[str, GPU] = {
    "h100": GPU(989e12, 80, 3.35, 450, "NVIDIA H100 SXM datasheet, https://www.nvidia.com/en-us/data-center/h100/"),
    "h200": GPU(989e12, 141, 4.8, 450, "NVIDIA H200 datasheet, https://www.nvidia.com/en-us/data-center/h200/"),
    "h800": GPU(989e12, 80, 3.35, 200, "NVIDIA H800 SXM (H100 compute, 400 GB/s NVLink), DeepSeek-V3 report §3.1"),
    "b200": GPU(2250e12, 180, 8.0, 900, "NVIDIA DGX B200 datasheet (72 PF FP8 training / 8 GPUs / 4 for "
                "dense bf16), https://www.nvidia.com/en-us/data-center/dgx-b200/"),
    "a100-80gb": GPU(312e12, 80, 2.039, 300, "NVIDIA A100 datasheet, https://www.nvidia.com/en-us/data-center/a100/"),
    "a100-40gb": GPU(312e12, 40, 1.555, 300, "NVIDIA A100 datasheet, https://www.nvidia.com/en-us/data-center/a100/"),
    "l40s": GPU(362e12, 48, 0.864, 32, "NVIDIA L40S datasheet (PCIe Gen4 x16, no NVLink), "
                "https://www.nvidia.com/en-us/data-center/l40s/"),
    "mi300x": GPU(1307e12, 192, 5.3, 448, "AMD Instinct MI300X datasheet, "
                  "https://www.amd.com/en/products/accelerators/instinct/mi300/mi300x.html"),
}


def get_gpu(name: str, peak_flops: float | None = None, memory_gb: float | None = None) -> tuple[GPU, str]:
    """A GPU from the table, or one given by hand (--set gpu_peak_tflops=... --set gpu_memory_gb=...)."""
    known = GPUS.get(name.lower())
    if known is None and not (peak_flops and memory_gb):
        raise DistillError(f"unknown GPU type '{name}'; known: {', '.join(GPUS)}. For another GPU give its dense "
                           "bf16 peak and memory by hand: --set gpu_peak_tflops=989 --set gpu_memory_gb=80")
    base = known or GPU(0, 0, 3.35, 450, "given by hand (--set gpu_peak_tflops, gpu_memory_gb)")
    if peak_flops or memory_gb:
        base = GPU(peak_flops or base.peak_flops, memory_gb or base.memory_gb, base.hbm_tb_s, base.nvlink_gb_s,
                   base.source + "; peak/memory set by you (--set)")
    return base, name.lower()


# Dense bf16 tensor-core peak per GPU (datasheets); matched in order against torch.cuda.get_device_name(). The
# trainer's MFU reads this list: it names cards the table above does not (H100 PCIe, L4, A10) and keeps the
# datasheet's 989.4 where GPUS rounds to 989 (the figure plan's back-tests were fitted with).
PEAK_BF16_FLOPS = [
    ("H100 PCIe", 756e12), ("H100", 989.4e12), ("H200", 989.4e12), ("GH200", 989.4e12), ("H800", 989.4e12),
    ("B200", 2250e12), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("L4", 121e12), ("A10", 125e12),
]


def peak_flops(device_name: str) -> float | None:
    return next((peak for key, peak in PEAK_BF16_FLOPS if key in device_name), None)
