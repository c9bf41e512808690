"""The `defectlens` command line: fit, inspect, evaluate, info, demo, calibrate, locate-examples, export, train-grounding, serve
and export-reviews.

Each command is a thin layer over the stages' public surfaces; see ``defectlens --help``.
"""

from __future__ import annotations

import typer

from defectlens.cli import calibrate, examples, export, grounding, vision
from defectlens.cli import service as service_cli
from defectlens.cli.progress import one_line_warnings, stop_on_terminate

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline industrial defect inspection.")


@app.callback()
def _setup() -> None:
    """Offline industrial defect inspection."""
    one_line_warnings()
    stop_on_terminate()


app.command()(vision.fit)
app.command()(vision.inspect)
app.command()(vision.evaluate)
app.command()(vision.info)
app.command()(vision.demo)
app.command()(calibrate.calibrate)
app.command("locate-examples")(examples.locate_examples_command)
app.command()(export.export)
app.command("train-grounding")(grounding.train_grounding)
app.command()(service_cli.serve)
app.command("export-reviews")(service_cli.export_reviews)

__all__ = ["app"]
