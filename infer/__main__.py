"""Entry point of ``python -m infer``; the commands live in ``infer.cli``."""

import signal
import sys
from types import FrameType

from infer.cli import main

# The exit code a shell reports for a process ended by SIGTERM.
SIGTERM_EXIT_CODE = 128 + signal.SIGTERM


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(SIGTERM_EXIT_CODE)


def stop_cleanly_on_sigterm() -> None:
    """Turn SIGTERM into ``SystemExit`` so that ``finally`` blocks run.

    By default SIGTERM ends the process at once and leaves the temporary
    file of an output being written. As an exception it unwinds the
    stack, so the writers remove their temporary files.
    """
    signal.signal(signal.SIGTERM, _exit_on_sigterm)


if __name__ == "__main__":
    stop_cleanly_on_sigterm()
    sys.exit(main())
