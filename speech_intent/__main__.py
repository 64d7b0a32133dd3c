"""``python -m speech_intent``: the command line."""
import sys

from .cli import main

sys.exit(main())
