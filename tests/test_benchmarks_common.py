"""benchmarks/common.py: the peak-memory sampler and the JSON results every benchmark uses, and that the
benchmarks and tools run as packages (``python -m benchmarks.NAME``), never by editing ``sys.path``."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import MB, PeakMemory, write_json

REPO = Path(__file__).resolve().parents[1]
#: A child that starts a grandchild holding 200 MB (touched, so resident) for half a second.
_TREE = ("import subprocess, sys; subprocess.run([sys.executable, '-c', "
         "\"import time; a = bytearray(200 * 2**20); a[::4096] = b'x' * len(a[::4096]); time.sleep(0.5)\"])")


def test_peak_memory_counts_a_process_tree_only_when_asked():
    for children in (True, False):
        child = subprocess.Popen([sys.executable, "-c", _TREE])
        with PeakMemory(child.pid, children=children, interval=0.02) as memory:
            child.wait()
        if children:
            assert memory.peak_mb > 200, memory.peak_mb  # the grandchild's 200 MB
        else:
            assert 0 < memory.peak_mb < 150, memory.peak_mb  # the child alone: an interpreter
    assert memory.stop() == memory.peak  # stopping again keeps the peak of a process that has exited


def test_peak_memory_of_this_process_sees_an_allocation_freed_before_the_end():
    with PeakMemory(interval=0.01) as memory:
        before = memory.latest
        block = np.ones(100 * MB // 8)  # written, so resident
        time.sleep(0.5)  # many sampling intervals, even on a busy machine
        del block
    assert memory.peak - before > 90 * MB


def test_write_json_writes_numpy_scalars_as_numbers_and_paths_as_text(tmp_path):
    out = write_json(tmp_path / "sub" / "result.json", {"f": np.float32(0.5), "i": np.int64(3), "p": tmp_path})
    text = out.read_text()
    assert text.endswith("}\n") and json.loads(text) == {"f": 0.5, "i": 3, "p": str(tmp_path)}


def test_benchmarks_and_tools_edit_no_import_path():
    files = sorted((REPO / "benchmarks").glob("*.py")) + sorted((REPO / "tools").rglob("*.py"))
    assert (REPO / "benchmarks" / "__init__.py").is_file() and (REPO / "tools" / "gpu_check" / "__main__.py").is_file()
    for file in files:
        for node in ast.walk(ast.parse(file.read_text())):
            if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", None) == "sys":
                raise AssertionError(f"{file.relative_to(REPO)} edits or reads sys.path (line {node.lineno})")
