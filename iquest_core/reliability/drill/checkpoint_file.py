"""What a bit of a saved safetensors checkpoint file holds, and what a reader without checks would load."""

from __future__ import annotations

import json

import torch
from safetensors.torch import load as safetensors_load

from iquest_core.reliability.faults import bit_field

SAFETENSORS_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                      "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
                      "BOOL": torch.bool}


def _header(raw: bytes) -> tuple[int, dict]:
    size = int.from_bytes(raw[:8], "little")
    return size, json.loads(raw[8:8 + size])


def file_bit_field(raw: bytes, byte: int, bit: int) -> tuple[str, str]:
    """(tensor name or "header", bit field) of bit `bit` of byte `byte` of a safetensors file."""
    size, header = _header(raw)
    offset = byte - 8 - size
    if offset < 0:
        return "header", "header"
    for name, info in header.items():
        if name != "__metadata__" and info["data_offsets"][0] <= offset < info["data_offsets"][1]:
            dtype = SAFETENSORS_DTYPES[info["dtype"]]
            within = (offset - info["data_offsets"][0]) % torch.empty(0, dtype=dtype).element_size()
            return name, "integer" if dtype == torch.bool else bit_field(dtype, within * 8 + bit)
    return "header", "header"


def unverified_contents(raw: bytes):
    """What a reader without fingerprint checks would load from a checkpoint's bytes: its tensors (as raw
    bytes, dtype and shape) and its metadata other than the fingerprints; None if it does not parse."""
    try:
        tensors = safetensors_load(raw)
        metadata = _header(raw)[1].get("__metadata__", {})
    except Exception:  # noqa: BLE001  (any parse failure makes the file unusable)
        return None
    return ({k: (v.dtype, tuple(v.shape), v.contiguous().view(-1).view(torch.uint8).numpy().tobytes())
             for k, v in tensors.items()}, {k: v for k, v in metadata.items() if "fingerprint" not in k})
