"""Benchmark scripts of speech-intent (not part of the library or of CI). Run each from the repository root
as ``python -m benchmarks.NAME`` (``--help`` for its flags); what they share is in :mod:`benchmarks.common`,
their results and how to reproduce them in ``benchmarks/README.md``."""
