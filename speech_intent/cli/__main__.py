"""``python -m speech_intent.cli``: the command line."""
import sys

from . import main

sys.exit(main())
