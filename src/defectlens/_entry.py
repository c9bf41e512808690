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
        # "By this run": a --resume stopped here had read "nothing done" beside 32 finished results (probe).
        sys.stderr.write("interrupted: stopped while loading, nothing done by this run\n")
        raise SystemExit(130) from None
    from defectlens.cli.progress import INTERRUPT_SAID

    try:
        app()
    except KeyboardInterrupt:
        # While the command line was built from the commands' signatures: a traceback had said it.
        sys.stderr.write("interrupted: stopped while starting, nothing done by this run\n")
        raise SystemExit(130) from None
    except SystemExit as exc:
        # Typer turns a Ctrl-C no command caught (between its steps) into status 130 without a word.
        if exc.code == 130 and not INTERRUPT_SAID:
            sys.stderr.write(f"interrupted: stopped; {UNSAID_INTERRUPT}\n")
        raise


UNSAID_INTERRUPT = "every file defectlens writes is written whole or not at all: run the command again to finish"
"""What is said of a Ctrl-C that came where no command says what it had finished."""
