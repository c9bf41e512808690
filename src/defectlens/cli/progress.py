"""The CLI's console: progress bars shared by every command that loops over images, the one
way a command fails on bad usage, and warnings as one line each."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, TextIO

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.text import Text

from defectlens._entry import stopping_signals
from defectlens.errors import ConfigError, NoteWarning, OutputError
from defectlens.io.atomic import printable_text
from defectlens.io.images import file_being_read
from defectlens.io.outputs import send_to_nowhere


class _GoesOnWhenReadersLeave(Console):
    """A console whose reader may leave (`| head -1`): what it says after goes nowhere, and the command goes on to its
    own end and status. Rich's own ended it with status 1 there, whatever it had done (`--fail-on-defect`'s 4 read 1;
    environment probe 2026-12-06)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        _to_nowhere(sys.stderr if self.stderr else sys.stdout)

    def render_str(self, text: str, **options: Any) -> Text:
        """Rich's text of a string — a message, a table's title or cell —, a file not named in UTF-8 written with backslash
        escapes (``\\xe9``, by :func:`printable_text`): the stream's own escaping had shown Python's stand-in
        (``\\udce9``), in tables' titles too (regression probe 2026-12-07)."""
        return super().render_str(printable_text(text), **options)


def _to_nowhere(stream: TextIO) -> None:
    """Send what is still written to ``stream``, whose reader left, to ``/dev/null`` (:func:`send_to_nowhere`)."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        send_to_nowhere(stream.fileno())


_STDERR_TERMINAL = sys.stderr is not None and sys.stderr.isatty()
# soft_wrap: a message is one line whatever the width. Rich hard-wraps text at the console's width,
# 80 columns when stderr is not a terminal (CI, logs, a pipe), which split each error's fix onto a
# second line; tables still fit the width.
console = _GoesOnWhenReadersLeave(stderr=True, soft_wrap=True, width=None if _STDERR_TERMINAL or "COLUMNS" in os.environ else 200)
"""Progress, notes, warnings, errors and result tables, on standard error. Not a terminal (a log,
CI, a pipe) and no COLUMNS: 200 columns, not rich's 80, so a table's file names stay whole."""
card_console = _GoesOnWhenReadersLeave()
"""Standard output, for what a command is asked for (the model card of `info`), so it can be
piped or saved; progress, notes, warnings and errors go to ``console`` (standard error)."""


def require_standard_output(what: str) -> None:
    """Refuse, before any work, to write ``what`` to a standard output that is closed (``>&-``): `info` and
    `evaluate --json -` had ended in a traceback, the latter after the whole evaluation (environment probe 2026-12-06)."""
    if sys.stdout is None:
        raise ConfigError(f"standard output is closed: {what} cannot be written there", None,
                          "redirect it to a file (> FILE)" + (", or pass --json FILE" if "--json" in what else ""))


def write_standard_output(text: str) -> None:
    """``text`` on standard output, whole: as UTF-8 bytes where its encoding cannot hold a character (an ASCII locale:
    `info` had failed on the card's "×" with an empty file)."""
    try:
        try:
            sys.stdout.write(text)
        except UnicodeEncodeError:
            sys.stdout.flush()
            sys.stdout.buffer.write(printable_text(text).encode("utf-8"))
        sys.stdout.flush()
    except BrokenPipeError:
        # Its reader left (`| head -0`, `| true`): the rest goes nowhere, and the command ends with its own status (it had
        # been 1, with nothing said; regression probe 2026-12-06).
        _to_nowhere(sys.stdout)
    except OSError as exc:
        # A full disk or device (`> /dev/full`): one line, not a traceback.
        raise fail(OutputError(f"standard output could not be written ({exc.strerror or exc})", None,
                               "send it where there is room (> FILE on another disk)")) from None


def one_line_warnings() -> None:
    """Show Python warnings as ``warning: <message>`` on the console, one line each, without the
    file, line and source text Python adds (which mean nothing to someone running a command)."""

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        text = str(message)
        if (image := file_being_read()) is not None and str(image) not in text:
            text = f"{image}: {text}"  # a decoder's own warning (Pillow's "Corrupt EXIF data") names no file
        console.print(f"[yellow]warning:[/] {escape(text)}", highlight=False)
        if (kept := _KEPT.get()) is not None:
            kept.append(f"warning: {text}")

    warnings.showwarning = show
    # Commands print the notes these warnings repeat (see NoteWarning).
    warnings.filterwarnings("ignore", category=NoteWarning)
    # Pillow's warning of an image over 89 M pixels: such an image is refused in one line by defectlens's lower limit (see
    # io.images.decoded_pixels), and Pillow's own words, a second message, said nothing more.
    from PIL import Image

    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)


def fail(exc: Exception) -> typer.Exit:
    """Print ``exc`` as the one-line error it is and return the exit (status 2, bad usage) to raise."""
    console.print(f"[red]error:[/] {escape(str(exc))}")
    return typer.Exit(2)


EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT), as shells expect."""


def notes(lines: Iterable[object]) -> None:
    """Print each of ``lines`` as a note (what a command found that the user should know)."""
    for line in lines:
        console.print(f"[yellow]note:[/] {escape(str(line))}")
        if (kept := _KEPT.get()) is not None:
            kept.append(str(line))


_KEPT: ContextVar[list[str] | None] = ContextVar("defectlens_kept_notes", default=None)


def keep_notes() -> list[str]:
    """From here to the end of the command (one a process; a new call starts a new list), each note :func:`notes` prints and each
    warning shown is also kept in the list returned, for the command's JSON: `evaluate --json` had recorded none of what
    qualified its figures (regression probe 2026-12-07)."""
    kept: list[str] = []
    _KEPT.set(kept)
    return kept


def stop_on_terminate() -> None:
    """Take SIGTERM (``docker stop``, systemd, a cancelled CI job) and SIGHUP (:func:`~defectlens._entry.stopping_signals`)
    as Ctrl-C: the command stops the same way, says what was finished and leaves its outputs complete. By default it died
    at once, with no message and no summary of the images already done."""
    if threading.current_thread() is threading.main_thread():
        for signum in stopping_signals():
            signal.signal(signum, _raise_interrupt)


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


INTERRUPT_SAID: list[str] = []
"""What :func:`interrupted` said in this process: the entry point speaks for a Ctrl-C no command caught."""


def interrupted(what: str) -> typer.Exit:
    """Ctrl-C: say what was finished (and what was left as it was), and return the exit (130) to raise."""
    console.print(f"[yellow]interrupted:[/] {escape(str(what))}")
    INTERRUPT_SAID.append(what)
    return typer.Exit(EXIT_INTERRUPTED)


LOG_EVERY_SECONDS = 30.0
"""How often a progress bar writing to a log (not a terminal) prints a line instead."""


@contextlib.contextmanager
def _drawn_at_the_end(bar: Progress | None) -> Iterator[None]:
    """Print ``bar`` once as the block ends, however it ends (a bar whose live display is off); nothing for None."""
    try:
        yield
    finally:
        if bar is not None:
            console.print(bar.get_renderable())


@contextlib.contextmanager
def progress_bar(description: str, total: int, then: str | None = None) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr; yields the ``advance(n)`` callback the stages accept. ``then``:
    what the stage does after its counted part, shown (with the clock still running) once the
    count is full — `fit` sat a minute at "250/250" building the bank and setting its thresholds."""
    # Not a terminal (a log, CI, systemd), whatever FORCE_COLOR makes rich take it for: with FORCE_COLOR=1 and standard error
    # in a file the bar was redrawn ten times a second into the log, and the plain lines below never came (pipelines probe).
    logging = not (console.is_terminal and _STDERR_TERMINAL)
    # Taken for a terminal all the same, rich's live bar was drawn again, its count stale, after every line printed while
    # it ran (regression probe 2026-12-06): no live bar then, and the bar drawn once as it ends, as in any log.
    forced = logging and console.is_terminal
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
        auto_refresh=not logging,
        disable=forced,
    ) as bar, _drawn_at_the_end(bar if forced else None):
        task = bar.add_task(description, total=total)
        counted = [0]
        # Not a terminal: the bar is drawn once, at the end, and a 3 000-image run was silent for its
        # whole two minutes. A line at most every LOG_EVERY_SECONDS instead.
        started = last = time.monotonic()

        def advance(n: int) -> None:
            nonlocal last
            bar.advance(task, n)
            counted[0] += n
            if then is not None and counted[0] >= total:
                bar.update(task, description=then, total=None)  # no count left: the bar pulses
            now = time.monotonic()
            if logging and now - last >= LOG_EVERY_SECONDS and counted[0] < total:
                last = now
                rate = counted[0] / max(now - started, 1e-9)
                left = f", about {(total - counted[0]) / rate:.0f} s left" if rate > 0 else ""
                console.print(f"{description}: {counted[0]}/{total} in {now - started:.0f} s{left}", highlight=False)

        yield advance
