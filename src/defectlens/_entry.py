"""The ``defectlens`` console command: the command line, with a Ctrl-C pressed while it loads
(PyTorch takes seconds) said in one line instead of an import traceback."""

from __future__ import annotations

import signal
import sys


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    """Load the command line and run it."""
    # SIGTERM as Ctrl-C from the first instant: while PyTorch loads it had ended the command with
    # status 143 and no word, where every other moment gives 130 and says what was done.
    signal.signal(signal.SIGTERM, _stop)
    try:
        from defectlens.cli import app
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: stopped while loading, nothing done\n")
        raise SystemExit(130) from None
    app()
