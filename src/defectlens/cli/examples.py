"""`defectlens locate-examples`: show where a model finds the defect in each example.

`inspect --examples DIR` learns each defect type from the region the model locates in every
example without a mask, and from the region its map marks on the mask of every example with one. This command
writes those regions as pictures first, so a person can check them (and add a mask where one is wrong) before they
decide anything.

Registered by the CLI root (``app.command("locate-examples")(examples.locate_examples_command)``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from defectlens.classify import LOCATE_HINT
from defectlens.cli.progress import console, fail, interrupted, notes
from defectlens.cli.vision import EXIT_PARTIAL
from defectlens.engine import Locator, examples_to_draw, gather_examples
from defectlens.errors import ConfigError, DefectlensError
from defectlens.explain.location import format_share
from defectlens.inspector import Inspector
from defectlens.io import load_image, load_mask, write_bytes_atomic, write_json_atomic
from defectlens.io.atomic import atomic_directory, folder_identity, require_replaceable_folder
from defectlens.io.images import png_bytes
from defectlens.io.outputs import unique_output_names
from defectlens.locate import render_outlines
from defectlens.locate.overlay import REGION_COLOUR

MANIFEST = "located.json"
"""The file that marks a folder as this command's output (and says what is in it)."""
VIEW_COLOUR = (255, 200, 0)
"""Outline colour of an example's views (its other cuts and its contrast view)."""


def _is_located_folder(path: Path) -> bool:
    return (path / MANIFEST).is_file()


def locate_examples_command(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `defectlens fit`.")],
    examples: Annotated[
        Path, typer.Argument(help="Defect examples: DIR/<type>/*.png (masks optional) or an MVTec category (test/<type>/).")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Folder to write (replaced as a whole: new, empty or one this command wrote).")],
    k: Annotated[int | None, typer.Option(min=1, help="Examples per type drawn from an MVTec category (as `inspect --k`; default 5).")] = None,
) -> None:
    """Show where the model finds the defect in each example: located without a mask, read on the map where a mask says.

    That region is what `inspect --examples` learns each type from.

    OUTPUT/<type>/<image>.png shows each example with its region outlined in green (and the
    region's other views in amber: looser and tighter cuts, the pixels that stand out), and
    OUTPUT/located.json lists every example — located by the model or read where a mask file says,
    the region's share of the image — and every example skipped, with why. A wrong region is
    fixed by giving that example a mask (DIR/<type>/masks/<stem>_mask.png).
    Exit status: 0 every example has a region, 3 some were skipped, 2 bad usage, 130 interrupted."""
    before = folder_identity(output)
    try:
        require_replaceable_folder(output, _is_located_folder, "located-examples folder")
        k = examples_to_draw(k, examples)
        if Inspector.needs_taxonomy(model_dir):
            raise ConfigError("a zero-shot grounding model locates nothing here", model_dir, "pass a model written by `defectlens fit`")
        inspector = Inspector.load(model_dir)
        found = gather_examples(examples, k, locator=Locator.of(inspector))
        # One picture per example even when two of a type share a stem (a.png, a.jpg).
        names = {t: unique_output_names([e.path for e in found.examples if e.defect_type == t], [".png"])[0] for t in found.types}
        rows: list[dict] = []
        lines: list[tuple[str, str, str, str]] = []  # the terminal table's rows
        dropped: list[tuple[Path, str]] = list(found.skipped)
        with atomic_directory(output, _is_located_folder, "located-examples folder") as tmp:
            for e in found.examples:
                try:
                    image = load_image(e.path, inspector.bit_depth)
                    h, w = image.shape[:2]
                    if e.mask is not None and e.mask_path is not None:
                        # What the classifier learns: the map's region where the mask file says (classify.examples.masked_views).
                        mask, source = e.mask, (f"mask file {e.mask_path.name}: the map stays under the pixel threshold there, "
                                                "read around its highest point on the mask"
                                                if e.off_map else f"mask file {e.mask_path.name}, read on the model's map there")
                    elif e.mask is not None:
                        mask, source = e.mask, "located by the model" + (" — which judges this image good: check it" if e.unflagged else "")
                    elif e.mask_path is not None:
                        mask, source = load_mask(e.mask_path, expected_size=(w, h)), f"mask file {e.mask_path.name}"
                    else:
                        mask, source = np.ones((h, w), bool), "whole image"
                except DefectlensError as exc:
                    # Skipped and listed, as `inspect --examples` skips it: one bad example does not stop the rest.
                    dropped.append((e.path, str(exc)))
                    continue
                if not mask.any():
                    dropped.append((e.path, f"its mask {e.mask_path} is empty: the example shows no defect"))
                    continue
                picture = f"{e.defect_type}/{names[e.defect_type][e.path]}.png"
                share = float(mask.mean())
                layers = [(v, VIEW_COLOUR) for v in e.views] + [(mask, REGION_COLOUR)]
                # A small share in pixels: "0.0%" had read as an empty region (regression probe 2026-12-06); else as the reports
                # say a share (format_share: "0.52%" there had been "0.5%" here; code review 2026-12-06).
                size = format_share(share) if share >= 0.001 else f"{int(mask.sum())} px"
                caption = f"{e.defect_type}: {size} of the image"
                (tmp / e.defect_type).mkdir(exist_ok=True)
                write_bytes_atomic(tmp / picture, png_bytes(render_outlines(image, layers, caption)))
                rows.append(
                    {"type": e.defect_type, "image": str(e.path), "region": source, "share_of_image": round(share, 5),
                     "views": len(e.views), "picture": picture, **({"judged_good": True} if e.unflagged else {})}
                )
                shown = f"[yellow]{escape(source)}[/]" if e.unflagged else escape(source)
                lines.append((escape(e.defect_type), escape(e.path.name), shown, size))
            skipped = [{"image": str(path), "reason": reason} for path, reason in dropped]
            lines += [("", escape(path.name), f"[yellow]skipped: {escape(reason)}[/]", "") for path, reason in dropped]
            # This command is where they are shown: the pointer to it is left out of its own notes.
            found.notes = [n.replace(LOCATE_HINT, "") for n in found.notes]
            write_json_atomic(tmp / MANIFEST, {"model": str(model_dir), "examples": rows, "skipped": skipped, "notes": found.notes})
    except (DefectlensError, ValueError) as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        if folder_identity(output) != before:  # swapped in the moment before the interrupt
            raise interrupted(f"the located examples were written to {output} just before the interrupt") from None
        raise interrupted(f"nothing written; {output} is as it was") from None
    notes(found.notes)
    table = Table(title=None)
    for header in ("type", "example", "region", "share of image"):
        table.add_column(header, overflow="fold")  # a long file name wraps whole, as inspect's table does, not cut with "…"
    for line in lines:
        table.add_row(*line)
    console.print(table)
    # The hint where an example has no mask (every example of an export has one: review-loop probe 2026-12-06).
    hint = (" A wrong region: give that example a mask (<stem>_mask.png beside it, or <stem>.png in <type>/masks/, which a name of "
            "any length can have).") if any(e.mask_path is None for e in found.examples) else ""
    console.print(f"pictures → {escape(str(output))}/<type>/; list → {escape(str(output / MANIFEST))}.{hint}")
    if skipped:
        raise typer.Exit(EXIT_PARTIAL)
