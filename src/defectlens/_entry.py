"""The ``defectlens`` console command: the command line, with a Ctrl-C pressed while it loads
(PyTorch takes seconds) said in one line instead of an import traceback."""

from __future__ import annotations

import sys


def main() -> None:
    """Load the command line and run it."""
    try:
        from defectlens.cli import app
    except KeyboardInterrupt:
        sys.stderr.write("interrupted: stopped while loading, nothing done\n")
        raise SystemExit(130) from None
    app()
