"""The `defectlens` command line: fit, inspect, evaluate, info, demo, calibrate, locate-examples, export, train-grounding, serve,
export-reviews, prune-files and prune-inspections.

Each command is a thin layer over the stages' public surfaces; see ``defectlens --help``.
"""

from __future__ import annotations

import re
import shutil
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer import rich_utils
from typer.core import TyperCommand, TyperOption

import defectlens
from defectlens.cli import calibrate, evaluate, examples, export, grounding, vision
from defectlens.cli import service as service_cli
from defectlens.cli.progress import console, fail, one_line_warnings, stop_on_terminate

RICH_HELP_MIN_COLUMNS = 120
"""Narrower terminals get click's plain help: typer's option table gives the text column a fifth of
an 80-column terminal ("efficientnet-li…", one word a line), while the plain layout wraps it in full."""


def _format_help(base: Any, command: Any, ctx: Any, formatter: Any) -> None:
    # Any: typer 0.29 vendors its own click (typer._click), whose types are private.
    if shutil.get_terminal_size().columns >= RICH_HELP_MIN_COLUMNS:
        base.format_help(command, ctx, formatter)
        return
    mode, command.rich_markup_mode = command.rich_markup_mode, None
    try:
        base.format_help(command, ctx, formatter)
    finally:
        command.rich_markup_mode = mode


class _Command(TyperCommand):
    """A command whose help fits the terminal (see :data:`RICH_HELP_MIN_COLUMNS`), and that refuses an empty argument."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        _format_help(TyperCommand, self, ctx, formatter)

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if (empty := empty_argument(args)) is not None:
            # "" is the current folder to a path: `-o "$OUT"` with OUT unset had written results into the folder the job
            # ran in, and `inspect MODEL ""` inspected it (CLI probe 2026-12-06).
            raise fail(ValueError(f"{empty} is empty (an unset variable?), and an empty path is the current folder — fix: pass a "
                                  "value, or leave it out"))
        return list(super().parse_args(ctx, args))


def empty_argument(args: list[str]) -> str | None:
    """How the first empty argument of a command line is named ("an argument after -o"), or None when none is empty: an
    argument "" or an option given as ``--json=``."""
    for i, arg in enumerate(args):
        if arg == "":
            return f"an argument after {args[i - 1]}" if i else "the first argument"
        if arg.startswith("--") and arg.endswith("=") and "--" not in args[:i]:
            return f"the value of {arg[:-1]}"
    return None


def _command_said() -> str:
    """The command the command line names (``defectlens fit``), for an error click raises without its context: an option's
    missing value (`fit DATA -o`) had pointed to the top-level help, which lists no command's options (documentation probe
    2026-12-07)."""
    names = {c.name or c.callback.__name__.replace("_", "-") for c in app.registered_commands if c.callback is not None}
    words = [a for a in sys.argv[1:] if not a.startswith("-")]
    return f"defectlens {words[0]}" if words and words[0] in names else "defectlens"


def _usage_error_in_one_line(error: Any) -> None:
    """A usage error (an unknown option, a missing argument, a value of the wrong type) as the one line every other error
    is, on standard error: typer's framed panel took 6 to 12 lines, and `grep '^error:'` in a CI log found every error but
    these (CLI probe 2026-12-06)."""
    if type(error).__name__ == "NoArgsIsHelpError":  # the help was shown: nothing is wrong
        return
    ctx = getattr(error, "ctx", None)
    fix = f"see `{ctx.command_path} --help`" if ctx is not None else f"see `{_command_said()} --help`"
    if "is not readable" in error.format_message():
        # The command line's own check of a path this user may not read: the help has nothing to say of it (regression
        # probe 2026-12-07: a model folder of mode 000).
        fix = "give this user read permission on it (and enter permission, x, on a folder and the folders above it)"
    console.print(f"[red]error:[/] {escape(' '.join(error.format_message().split()))} — fix: {escape(fix)}", highlight=False)


rich_utils.rich_format_error = _usage_error_in_one_line  # type: ignore[assignment]  # typer vendors click: its type is private


# The command list keeps typer's layout at any width: it wraps each command's summary in full, where
# click's plain layout cut them at about 45 characters ("Fit a detector on the normal images of...").
# -h as well as --help, as most command-line tools take it (a first try of `defectlens inspect -h` was "No such option").
app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline industrial defect inspection.",
                  context_settings={"help_option_names": ["-h", "--help"]})

# typer 0.29 shows every option with a value type, flags too: "--resume <bool>", "--help <bool>",
# and `--check true` then fails (README audit 2026-12-05). A flag takes no value: none is shown.
_value_type = TyperOption.display_type_rich


def _flag_takes_no_value(self: TyperOption, ctx: Any) -> str | None:
    return None if self.is_flag else _value_type(self, ctx)


TyperOption.display_type_rich = _flag_takes_no_value  # type: ignore[method-assign]


def _help_of(command: Callable[..., Any]) -> str:
    """A command's docstring with each paragraph's lines joined: typer 0.29 keeps the source's line
    breaks after the first paragraph, and the terminal's wrapping on top of them left ragged lines
    ("… else from the" / "taxonomy's descriptions …"). A line that starts a list item keeps its break."""
    paragraphs = (command.__doc__ or "").strip().split("\n\n")
    joined = [re.sub(r"\n\s*(?![-*] |\d+\. |Exit status)", " ", re.sub(r"\n[ \t]+", "\n", p.strip())) for p in paragraphs]
    return "\n\n".join(joined)


def _print_version(asked: bool) -> None:
    if asked:
        # On standard output, alone: what a script or a bug report records.
        typer.echo(f"defectlens {defectlens.__version__}")
        raise typer.Exit()


@app.callback()
def _setup(
    version: Annotated[bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")] = False,
) -> None:
    """Offline industrial defect inspection."""
    one_line_warnings()
    stop_on_terminate()


COMMANDS: list[tuple[str, Callable[..., Any]]] = [
    ("fit", vision.fit),
    ("inspect", vision.inspect),
    ("evaluate", evaluate.evaluate),
    ("info", vision.info),
    ("demo", vision.demo),
    ("calibrate", calibrate.calibrate),
    ("locate-examples", examples.locate_examples_command),
    ("export", export.export),
    ("train-grounding", grounding.train_grounding),
    ("serve", service_cli.serve),
    ("export-reviews", service_cli.export_reviews),
    ("prune-files", service_cli.prune_files),
    ("prune-inspections", service_cli.prune_inspections),
]
"""Every command, by name (registered below with its help reflowed)."""
for name, command in COMMANDS:
    app.command(name, help=_help_of(command), cls=_Command)(command)

__all__ = ["app"]
