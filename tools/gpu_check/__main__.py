"""``python -m tools.gpu_check OUT [--device cuda] [--dry-run] [--only NAME ...]``."""
import sys

from .runner import main

sys.exit(main())
