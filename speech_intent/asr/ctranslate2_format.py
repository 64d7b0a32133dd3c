"""Reading CTranslate2's ``model.bin`` with :mod:`numpy` (no ``ctranslate2`` needed).

Binary version 6, little endian::

    u32 version | str spec_name | u32 revision | u32 n_variables
    n_variables x (str name | u8 rank | rank x u32 dim | u8 dtype_id | u32 n_bytes | bytes)
    u32 n_aliases | n_aliases x (str alias | str target)

``str`` is ``u16 length (incl. NUL) | utf-8 bytes | NUL``; ``dtype_id`` indexes ``_CT2_DTYPES``.
:func:`read_ctranslate2_model` parses a file; :func:`dequantize` undoes int8/int16 weight quantization.
"""
from __future__ import annotations

import logging
import mmap
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CTranslate2FormatError

logger = logging.getLogger(__name__)

__all__ = ["SUPPORTED_BINARY_VERSIONS", "dequantize", "read_ctranslate2_model"]

SUPPORTED_BINARY_VERSIONS = (6,)
_CT2_DTYPES: tuple[str, ...] = ("float32", "int8", "int16", "int32", "float16", "bfloat16")


class _Reader:
    """Sequential little-endian reader over a buffer that reports errors with the file name."""

    def __init__(self, buf: Any, path: Path) -> None:
        self.buf, self.path, self.pos = buf, path, 0

    def fail(self, msg: str) -> CTranslate2FormatError:
        return CTranslate2FormatError(f"{self.path}: {msg} (at byte offset {self.pos})")

    def take(self, n: int) -> int:
        if n < 0 or self.pos + n > len(self.buf):
            raise self.fail(f"truncated or corrupt file: need {n} bytes, {len(self.buf) - self.pos} left")
        start, self.pos = self.pos, self.pos + n
        return start

    def unpack(self, fmt: str) -> int:
        return struct.unpack_from("<" + fmt, self.buf, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = bytes(self.buf[self.take(length) : self.pos])
        if not raw or raw[-1] != 0:
            raise self.fail("corrupt string (empty or not NUL-terminated)")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError as exc:
            raise self.fail(f"invalid utf-8 in string: {exc}") from None


def read_ctranslate2_model(path: str | Path) -> tuple[str, int, dict[str, np.ndarray]]:
    """Parse a CTranslate2 ``model.bin`` file.

    Returns:
        ``(spec_name, spec_revision, variables)``; an alias maps to the same array as its
        target. bfloat16 data is returned as float32.

    Raises:
        CTranslate2FormatError: on unsupported binary versions or corrupt/truncated files.
    """
    path = Path(path)
    if not path.is_file():
        raise CTranslate2FormatError(f"{path}: model file not found")
    with path.open("rb") as fh:
        if path.stat().st_size == 0:
            raise CTranslate2FormatError(f"{path}: file is empty")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            rd = _Reader(buf, path)
            version = rd.unpack("I")
            if version not in SUPPORTED_BINARY_VERSIONS:
                raise CTranslate2FormatError(f"{path}: unsupported CTranslate2 binary version {version} "
                                             f"(supported: {SUPPORTED_BINARY_VERSIONS})")
            spec, revision, count = rd.string(), rd.unpack("I"), rd.unpack("I")
            variables: dict[str, np.ndarray] = {}
            for _ in range(count):
                name = rd.string()
                shape = tuple(rd.unpack("I") for _ in range(rd.unpack("B")))
                type_id, nbytes = rd.unpack("B"), rd.unpack("I")
                if type_id >= len(_CT2_DTYPES):
                    raise rd.fail(f"variable {name!r} has unknown dtype id {type_id}")
                dtype = _CT2_DTYPES[type_id]
                np_dtype = np.dtype("uint16" if dtype == "bfloat16" else dtype).newbyteorder("<")
                expected = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
                if nbytes != expected:
                    raise rd.fail(f"variable {name!r}: {nbytes} bytes stored, shape {shape} x {dtype} needs {expected}")
                start = rd.take(nbytes)
                arr = np.frombuffer(buf, np_dtype, expected // np_dtype.itemsize, start).reshape(shape).copy()
                if dtype == "bfloat16":
                    arr = (arr.astype(np.uint32) << 16).view(np.float32)
                variables[name] = arr
            for _ in range(rd.unpack("I")):
                alias, target = rd.string(), rd.string()
                if target not in variables:
                    raise rd.fail(f"alias {alias!r} points to unknown variable {target!r}")
                variables[alias] = variables[target]
            if rd.pos != len(buf):
                raise rd.fail(f"{len(buf) - rd.pos} unexpected trailing bytes")
    logger.debug("Read %s: spec=%s rev=%d, %d variables", path, spec, revision, len(variables))
    return spec, revision, variables


def dequantize(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Undo CTranslate2 int8/int16 weight quantization (``w = q / scale``) and drop the scales."""
    out: dict[str, np.ndarray] = {}
    for name, value in variables.items():
        if name.endswith(("_scale", "_zero")):
            continue
        if f"{name}_zero" in variables:
            raise CTranslate2FormatError(f"variable {name!r} uses AWQ-style quantization, which is not supported")
        scale = variables.get(f"{name}_scale")
        if scale is not None:
            value = value.astype(np.float32) / scale.astype(np.float32).reshape(
                scale.shape + (1,) * (value.ndim - scale.ndim))  # per-row (int8) or scalar (int16) scales
        out[name] = value
    return out
