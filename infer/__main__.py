"""Entry point of ``python -m infer``; the commands live in ``infer.cli``."""

import sys

from infer.cli import main

if __name__ == "__main__":
    sys.exit(main())
