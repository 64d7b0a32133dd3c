"""Tools for working on speech-intent (not part of the library): ``tools.gpu_check``, the GPU readiness
check. Run them from the repository root, e.g. ``python -m tools.gpu_check --help``."""
