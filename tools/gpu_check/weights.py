"""How ``prepare.sh`` fits tiny.en into the device tool's carry limit: :func:`pack_int8` stores the 2-D
weights of a transformers Whisper checkpoint as int8 rows, :func:`unpack_int8` gives the fp16 checkpoint back
on the GPU machine."""
from __future__ import annotations

from pathlib import Path

import torch

#: The carried Whisper weights (:func:`pack_int8`) and the suffixes of a packed tensor's parts.
INT8_WEIGHTS, _Q, _SCALE = "model.int8.safetensors", ".int8", ".scale"


def pack_int8(checkpoint: Path) -> Path:
    """Replace ``checkpoint/model.safetensors`` by :data:`INT8_WEIGHTS`: 2-D weights as int8 rows with an fp32
    scale each (symmetric, absmax), the rest in fp16; and ``tokenizer.json`` by its gzip. Run by prepare.sh:
    tiny.en in fp16 is 75.5 MB (+ a 3.9 MB tokenizer), over the carry limit by itself; packed it is 40 MB."""
    import gzip

    from safetensors.torch import load_file, save_file

    packed = {}
    for name, tensor in load_file(checkpoint / "model.safetensors").items():
        if tensor.ndim == 2 and tensor.numel() >= 65536 and "embed_positions" not in name:
            weight = tensor.float()
            scale = weight.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127.0
            packed[f"{name}{_Q}"] = torch.round(weight / scale).to(torch.int8)
            packed[f"{name}{_SCALE}"] = scale
        else:
            packed[name] = tensor.half()
    save_file(packed, checkpoint / INT8_WEIGHTS, metadata={"format": "pt"})
    (checkpoint / "model.safetensors").unlink()
    tokenizer = checkpoint / "tokenizer.json"
    (checkpoint / "tokenizer.json.gz").write_bytes(gzip.compress(tokenizer.read_bytes(), 9))
    tokenizer.unlink()
    return checkpoint / INT8_WEIGHTS


def unpack_int8(packed: Path, out: Path) -> Path:
    """The fp16 checkpoint of a :func:`pack_int8` folder, written to ``out`` (its other files copied, gzips
    uncompressed)."""
    import gzip
    import shutil

    from safetensors.torch import load_file, save_file

    tensors = load_file(packed / INT8_WEIGHTS)
    weights = {name[: -len(_Q)]: (value.float() * tensors[name[: -len(_Q)] + _SCALE]).half()
               for name, value in tensors.items() if name.endswith(_Q)}
    weights.update({name: value for name, value in tensors.items() if not name.endswith((_Q, _SCALE))})
    out.mkdir(parents=True, exist_ok=True)
    for file in packed.iterdir():
        if file.suffix == ".gz":
            (out / file.stem).write_bytes(gzip.decompress(file.read_bytes()))
        elif file.is_file() and file.name != INT8_WEIGHTS:
            shutil.copy2(file, out / file.name)
    save_file(weights, out / "model.safetensors", metadata={"format": "pt"})
    return out
