"""Device and dtype choice, and whether a model fits: cuda when present, else cpu."""

from __future__ import annotations

from .base import BackendError, ModelSpec


def pick_device(spec: ModelSpec) -> str:
    import torch

    if spec.device != "auto":
        if spec.device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendError("unavailable", f"model {spec.name!r} asks for device {spec.device!r} but no CUDA GPU is present")
        return spec.device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(spec: ModelSpec, device: str):
    import torch

    if spec.dtype != "auto":
        try:
            return getattr(torch, spec.dtype)
        except AttributeError:
            raise BackendError("bad_config", f"model {spec.name!r}: unknown dtype {spec.dtype!r}") from None
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float32  # half precision on CPU is slow or unsupported for many ops


def check_fits(spec: ModelSpec, device: str, bytes_needed: int) -> None:
    """Refuse, with a message, a model that cannot fit in the free VRAM of its GPU."""
    if not device.startswith("cuda"):
        return
    import torch

    free, total = torch.cuda.mem_get_info(torch.device(device))
    if bytes_needed > free:
        raise BackendError(
            "no_memory",
            f"model {spec.name!r} needs about {bytes_needed / 2**30:.1f} GiB but {device} has "
            f"{free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB; set device = \"cpu\" for it or free the GPU",
        )
