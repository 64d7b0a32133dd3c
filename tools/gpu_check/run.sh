#!/usr/bin/env bash
# On the GPU machine: install the wheels prepare.sh left in .whl/ (no registry there), then run
# the check (python -m tools.gpu_check) with the given arguments, e.g. `bash tools/gpu_check/run.sh OUT --device cuda`.
set -uo pipefail
cd "$(dirname "$0")/../.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH="/tmp/site${PYTHONPATH:+:$PYTHONPATH}" || echo "note: the wheels in .whl/ did not install" >&2
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -m tools.gpu_check "$@"
