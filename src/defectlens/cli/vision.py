"""CLI commands of the vision expert: fit, inspect, info, demo (evaluate: `evaluate.py`)."""

from __future__ import annotations

import contextlib
import math
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, cast

import typer
from rich.markup import escape
from rich.table import Table

from defectlens import __version__
from defectlens.classify import untyped_reason
from defectlens.cli.progress import (
    card_console,
    console,
    fail,
    interrupted,
    notes,
    progress_bar,
    require_standard_output,
    write_standard_output,
)
from defectlens.descriptor import (
    CARD_FILE,
    DESCRIPTOR_FILE,
    PART_FILES,
    TAXONOMY_FILE,
    describe_model_in,
    part_card_section,
    part_files_note,
    part_taxonomy,
    read_descriptor,
    release_of,
    released_before,
    render_card,
    require_outside_models,
    worked_thresholds,
)
from defectlens.detect import FitSummary
from defectlens.detect.calibration import thresholds_from_normal
from defectlens.detect.fusion import FUSION_MODES, FusedDetector, FusionConfig
from defectlens.detect.grounding import GroundingDetector, GroundingModel
from defectlens.detect.grounding.detector import CUES, DEFAULT_CUE
from defectlens.detect.memory_bank import MemoryBankConfig
from defectlens.encode import BACKBONES, DEFAULT_BACKBONE
from defectlens.engine import (
    INSPECTION_SUFFIXES,
    MASK_SUFFIX,
    OVERLAY_FORMATS,
    BatchOutcome,
    audit_record,
    changed_since_inspected,
    completed_inspection,
    examples_to_draw,
    has_all_files,
    inspect_and_write,
    load_for_inspection,
    same_model,
    same_source,
)
from defectlens.errors import ConfigError, DatasetLayoutError, DefectlensError, ImageReadError, ModelFileError, OutputError
from defectlens.explain.gallery import (
    OVERLAY_CHOICES,
    ResultRow,
    read_inspection_json,
    read_result,
    recorded_thresholds,
    require_batch_results_writable,
    rows_drift,
    unlike_summary,
    view_summary,
    write_batch_results,
)
from defectlens.inspector import (
    FIT_DETECTORS,
    IMAGE_SIZE_RANGE,
    MIN_FIT_IMAGES,
    NO_NORMAL_DETECTORS,
    Failure,
    Inspector,
    InspectorSettings,
    part_relation,
    require_part_files_kept,
    scan_images,
)
from defectlens.io import (
    IMAGE_SUFFIXES,
    clean_stale_temporaries,
    images_below,
    json_text,
    load_category,
    printable_text,
)
from defectlens.io.atomic import escaped_unshowable, folder_identity, plain_label, require_replaceable_folder, restore_replaced_folders
from defectlens.io.dataset import (
    first_names,
    folder_any_case,
    is_good_folder,
    is_train_good,
    normal_folder_images,
    reading_fix,
    require_readable,
    unreadable_folder,
)
from defectlens.io.images import describe_unreadable, path_is, unread_format
from defectlens.io.names import spelled_as_choice
from defectlens.io.outputs import (
    MIN_ROOM,
    can_write,
    lock_folder,
    model_copy_room,
    require_apart_from,
    require_output_folder,
    require_output_path,
    require_room,
    saving_in,
    unique_output_names,
)
from defectlens.taxonomy import load_taxonomy
from defectlens.types import Thresholds

EXIT_PARTIAL = 3
"""Exit status when a batch finished but some inputs could not be processed."""
EXIT_DEFECTIVE = 4
"""`inspect --fail-on-defect`: every input inspected, and at least one part judged defective, or judged good in another
view than the training images' (which has not passed: :attr:`~defectlens.types.Inspection.view_note`)."""
ENGINES = ("local", "ray")
"""Where `inspect` runs the batches: this process, or a pool of Ray workers."""


def require_choice(option: str, what: str, value: str, allowed: tuple[str, ...]) -> str:
    """``value`` as ``allowed`` spells it (:func:`spelled_as_choice`); an option value outside them refused, naming them
    (checked before any image is decoded)."""
    if (choice := spelled_as_choice(value, allowed)) in allowed:
        return choice
    raise ConfigError(f"unknown {what} {value!r} for {option}", None, f"use one of {', '.join(allowed)}")


def note_cleaned(removed: list[Path]) -> None:
    """Say that an interrupted run's unfinished temporary files were removed (when any were)."""
    if removed:
        console.print(f"[yellow]note:[/] removed {len(removed)} unfinished temporary file(s) of an interrupted run (e.g. {escape(str(removed[0]))})")


STDIN_INPUT = Path("-")
"""An input that stands for the paths read from standard input, one a line."""


def with_listed_inputs(inputs: list[Path]) -> list[Path]:
    """``inputs`` with ``-`` replaced by the paths piped in, one a line (`find … | defectlens inspect
    MODEL - -o OUT`): thousands of paths on one command line meet the system's length limit, and
    ``xargs`` splits them into runs that each write their own summary over the last one's."""
    if STDIN_INPUT not in inputs:
        return inputs
    if sys.stdin is None or sys.stdin.isatty():
        raise ConfigError("'-' reads image paths from standard input, one a line, but none is piped in", None,
                          "pipe them in (find lot -name '*.png' | defectlens inspect MODEL - -o OUT), or name the images")
    # Bytes, decoded as the file system's names are: a Latin-1 name piped in is the file it names. Names
    # ended by NUL (`find -print0`, the form every name fits) are read so, else one a line.
    stream = getattr(sys.stdin, "buffer", None)
    data = stream.read() if stream is not None else os.fsencode(sys.stdin.read())
    listed = [Path(line) for line in listed_names(data) if line.strip()]
    if walked := next((str(p) for p in listed if not str(p).strip("/") or str(p) in (".", "..")), None):
        # Never a whole folder tree from a list: one read wrongly (UTF-16 split at its NULs gives "i", "m", "/", ".", …) had
        # walked the file system, or the current folder (regression probes 2026-12-06). A folder is named as an argument.
        what = "the whole file system" if not walked.strip("/") else "the current folder" if walked == "." else "the folder above"
        raise ConfigError(f"the list piped in names {walked!r} ({what}): is it a text in another encoding?", None,
                          "save the list as UTF-8 (or UTF-16 with its byte-order mark), one path a line; name a folder as an argument")
    if not listed:
        raise ConfigError("'-' reads image paths from standard input, and none came", None, "pipe in one path a line")
    return [path for item in inputs for path in (listed if item == STDIN_INPUT else [item])]


def listed_names(data: bytes) -> list[str]:
    """The names in a list piped in: one a line (CRLF too), or ended by NUL (`find -print0`, the form every name fits), as
    the file system's names decode. A list saved as UTF-16 (Notepad's and PowerShell's "Unicode") is decoded as such: split
    at its NUL bytes, "imgs/a.png" had become "i", "m", …, "/" — the whole file system, walked as an input (Windows-inputs
    probe 2026-12-06); a UTF-8 byte-order mark before the first name is no part of it."""
    marked = data.startswith((b"\xff\xfe", b"\xfe\xff"))
    if marked or (order := _utf16_order(data)):
        # A truncated last byte: the name it ends is not found, and said.
        text = data.decode("utf-16" if marked else f"utf-16-{order}", errors="replace")
        # At line ends only, as the UTF-8 list is split: str.splitlines would also split at U+0085 and U+2028 in a name.
        return [line.strip("\r\ufeff") for line in text.split("\n")]
    data = data.removeprefix(b"\xef\xbb\xbf")
    return [os.fsdecode(b).rstrip("\r") for b in (data.split(b"\0") if b"\0" in data else data.splitlines())]


def _utf16_order(data: bytes) -> str | None:
    """"le" or "be" for a list in UTF-16 without its byte-order mark, else None. Told by a line end in UTF-16 (a newline
    and a NUL, in that order for "le") with NULs in a third or more of that half of the bytes: a NUL-ended list of
    one-letter names ("a\\0b\\0") has the bytes of the UTF-16 text "ab", and had been read so (regression probe
    2026-12-06), and names in Japanese leave fewer NULs than ASCII ones do."""
    if len(data) < 4:
        return None
    half = len(data) // 2
    for order, newline, nuls in (("le", b"\n\0", data[1::2].count(0)), ("be", b"\0\n", data[0::2].count(0))):
        ends = any(data[i:i + 2] == newline for i in range(0, len(data) - 1, 2))
        if ends and nuls >= half / 3:
            return order
    return None


def _told_apart(a: float, b: float) -> tuple[str, str]:
    """Two numbers shown to 6 significant digits, or in full (their shortest exact form) where that would show two different
    ones alike."""
    short = (f"{a:g}", f"{b:g}")
    return (repr(a), repr(b)) if short[0] == short[1] and a != b else short


def expand_inputs(inputs: list[Path], masks_expected: bool = False,
                  unreadable: list[tuple[Path, str]] | None = None, what: str = "input", done: str = "inspected") -> tuple[list[Path], list[Failure]]:
    """Files as given, folders expanded to their images (recursively, linked folders followed,
    sorted); masks beside their images (``<stem>_mask.png``, ``masks/``) are not parts and are left out,
    said once — unless ``masks_expected`` (defective parts' folders, where masks are the layout). Folders that cannot be
    listed are failures, and also go to ``unreadable`` (``(folder, why)``) when given. A file given by two names is said as
    :func:`repeated_names_note` says it, with ``what`` and ``done``."""
    files: list[Path] = []
    failures: list[Failure] = []
    for item in inputs:
        if path_is(item, "dir"):
            found = images_below(item)
            failures.extend(Failure(str(p), str(unread_format(p))) for p in found.other_formats)
            # Its images unknown, the folder is listed as not inspected (a probe's lot was "1 image(s) inspected", exit 0,
            # its unreadable subfolder's images unsaid; locked-down host probe 2026-12-07).
            failures.extend(Failure(str(p), f"{p}: folder cannot be read ({why}); its images were not inspected — fix: {reading_fix(why)}")
                            for p, why in found.unreadable_folders)
            if unreadable is not None:
                unreadable.extend(found.unreadable_folders)
            only_masks = bool(found.masks) and not found.images and not found.unreadable_folders
            if found.masks and not masks_expected and not only_masks:
                # "Left out", as fit says it: "taken as masks" read as used (regression probe 2026-12-07).
                example = found.masks[0].name
                notes([f"{item}: {len(found.masks)} file(s) named or kept as masks (`<stem>_mask`, or in a masks/ folder; e.g. {example}) "
                       "are left out: they are masks, not parts"])
            notes(f"{again}: links to a folder already read; its images are read once" for again in found.repeated_folders)
            if only_masks:
                # Not "holds no images — put .png files in it" of a folder of PNGs (regression probe 2026-12-07), as fit says it.
                failures.append(Failure(str(item), f"{item}: holds no image of a part, and its {len(found.masks)} file(s) named or kept as "
                                                   f"masks (`<stem>_mask`, or in a masks/ folder; e.g. {found.masks[0].name}) are masks "
                                                   "— fix: give the folder of the parts' images (not one named masks)"))
            elif not found.images and not found.unreadable_folders:
                failures.append(Failure(str(item), f"{item}: folder holds no images — fix: put {', '.join(sorted(IMAGE_SUFFIXES))} files in it"))
            files.extend(found.images)
        elif path_is(item, "any"):
            files.append(item)
        else:
            what, fix = describe_unreadable(item)
            failures.append(Failure(str(item), str(ImageReadError(what.replace("no such file", "no such file or folder"), item, fix))))
    # A file named twice (a folder and one of its files, `lot` and `./lot`) is one part: inspected
    # twice it was two rows, its files written twice, and it counted twice towards a batch's minimum.
    unique, repeated = first_names(files)
    if repeated:
        notes([repeated_names_note(repeated, what, done)])
    return unique, failures


def repeated_names_note(repeated: Sequence[tuple[Path, Path]], what: str = "input", done: str = "inspected") -> str:
    """What is said of input names that lead to a file already given (:func:`~defectlens.io.dataset.first_names`' pairs): which
    name it is listed under, since an operator looking up the other name (a link) found no row."""
    again, listed = repeated[0]
    example = f"{again}, given twice" if str(again) == str(listed) else f"{again} is {listed}"
    return f"{len(repeated)} {what} name(s) lead to a file already given (e.g. {example}): each file is {done} once, listed under the first name"


def display_names(inputs: list[Path], files: list[Path]) -> dict[Path, str]:
    """How each image is shown in the table, summary and gallery: relative to the folder given
    that holds it (``crack/007.png`` for a folder input), else as given — in full, never cut. Two
    images that would show alike (``x.png`` of two input folders) show with their folder's name
    (``day1/x.png``), or whole: the summary had two rows of one name and no way to tell them apart."""
    folders = [item for item in inputs if path_is(item, "dir")]
    names: dict[Path, str] = {}
    holders: dict[Path, Path] = {}
    for f in files:
        holder = next((d for d in folders if f.is_relative_to(d)), None)
        names[f] = str(f.relative_to(holder)) if holder is not None else str(f)
        if holder is not None:
            holders[f] = holder
    for form in (lambda f: str(f.relative_to(holders[f].parent)) if f in holders else str(f), str):
        counts = Counter(names.values())
        for f in [f for f in files if counts[names[f]] > 1]:
            names[f] = form(f)
    return {f: printable_text(name) for f, name in names.items()}


def report_failures(failures: list[Failure]) -> None:
    """List the inputs a command skipped, each with its reason (nothing when none was); those of one batch refused whole
    (:attr:`Failure.of_batch`: too few images left once a file failed) share one line naming them all."""
    if not failures:
        return
    console.print(f"[yellow]{len(failures)} input(s) skipped:[/]")
    # The same sentence once per image had filled a screen for a lot one unreadable file took under its minimum.
    batch_refused: dict[str, list[str]] = {}
    for f in failures:
        if f.of_batch:
            batch_refused.setdefault(str(f.message).removeprefix(f"{f.source}: "), []).append(f.source)
    for f in failures:
        reason = str(f.message).removeprefix(f"{f.source}: ")
        named = batch_refused.get(reason, []) if f.of_batch else []
        if len(named) < 2:
            # A name's control characters and marks written out: a newline had split the line, a byte-order mark hidden
            # before "imgs/a.png" made it read as a path that is there (Windows-inputs probe 2026-12-06).
            console.print(f"  [yellow]•[/] {escape(escaped_unshowable(str(f.message)))}")
        elif named[0] == f.source:  # said once, at the first of them
            # The first ten: a model's error on a lot of hundreds had made one line of them all (summary.csv lists each).
            names = ", ".join(named[:10]) + (f" and {len(named) - 10} more" if len(named) > 10 else "")
            console.print(f"  [yellow]•[/] {len(named)} inputs ({escape(escaped_unshowable(names))}): {escape(escaped_unshowable(reason))}")


def fit(
    category_dir: Annotated[
        Path, typer.Argument(help="Category folder in MVTec-AD layout (uses train/good), or a folder of normal parts' images.")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model directory to write (replaced as a whole: new, empty or a model).")],
    backbone: Annotated[str, typer.Option(help="efficientnet-lite0 or efficientnet-lite2.")] = DEFAULT_BACKBONE,
    image_size: Annotated[
        int, typer.Option(help=f"Canvas side (pixels, {IMAGE_SIZE_RANGE[0]}..{IMAGE_SIZE_RANGE[1]}) for the median image; aspect ratio is kept.")
    ] = 256,
    coreset_ratio: Annotated[float, typer.Option(help="Share of normal patches kept in the memory bank, in (0, 1].")] = 0.1,
    max_images: Annotated[int, typer.Option(min=0, help="Use at most this many normal images (0 = all).")] = 0,
    standardize: Annotated[bool, typer.Option(help="Equalise each image's exposure before encoding.")] = True,
    detector: Annotated[
        str, typer.Option(help=f"Detector family: {', '.join(FIT_DETECTORS)} (batch-scoring: no normal image, a batch scores itself).")
    ] = InspectorSettings.detector,
    false_alarm_target: Annotated[
        float, typer.Option(help="Share of good parts the label-free threshold may flag, in (0, 0.5]: it sits at that quantile of the normal scores.")
    ] = InspectorSettings.false_alarm_target,
    global_weight: Annotated[
        float,
        typer.Option(
            help="Memory bank: weight of a whole-image score (how unusual the image's averaged features are) added to the bank's, "
            "0..4 (0 = off). For parts whose defects change the whole surface; see the README's detector study."
        ),
    ] = InspectorSettings.global_weight,
    extra_neighbourhood: Annotated[
        list[int] | None,
        typer.Option(
            help="Memory bank: a further neighbourhood size (1 or 5, the sizes studied; any odd size up to 9 but 3; repeatable) with a "
            "bank of its own, its maps averaged with the 3 x 3 bank's; 0 = none (the 3 x 3 bank alone, given alone). Default: 1 "
            "(raised AUPRO on every shared part over five draws "
            "of the banks, README), off with --global-weight or another detector."
        ),
    ] = None,
    grounding: Annotated[
        Path | None, typer.Option(help="Grounding model (`defectlens train-grounding`) to fuse with the memory bank: look twice.")
    ] = None,
    taxonomy: Annotated[
        Path | None, typer.Option(help="Part taxonomy, kept with the model and read by --grounding (default: CATEGORY_DIR/taxonomy.json).")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the fit's random choices (the coreset's start, calibration and held-out draws, "
                                           "the discriminator's training); fit with several to see how much a result owes to the draw.")] = 0,
    fusion_mode: Annotated[str, typer.Option(help="sum (either detector can raise an alarm) or product (both must agree).")] = "sum",
    fusion_weight: Annotated[
        float | None,
        typer.Option(help="Weight of the grounding model in the fusion, 0..1 (default: chosen on the held-out normal images, at most 0.2)."),
    ] = None,
) -> None:
    """Fit a detector on the normal images of CATEGORY_DIR/train/good, or of a plain folder of them.

    Fused with a grounding model when --grounding is given.

    --detector batch-scoring reads no image (of CATEGORY_DIR only its taxonomy.json): the model
    folder holds its settings and the part's taxonomy, and `inspect` scores the images of each
    batch against each other.

    Exit status: 0 fitted on every image, 3 fitted but some images were skipped, 2 bad usage, 130 interrupted."""
    # Before anything looks at the path: a name in it too long for the file system had been a traceback here.
    try:
        require_output_path(output, "model folder")
    except OutputError as exc:
        raise fail(exc) from None
    # A model a killed save left moved aside is put back first: put back later (by the clean-up before the
    # fit), it read as "another run saved a model here while this fit ran", and the new model was not saved.
    with contextlib.suppress(OSError, RuntimeError):  # (a link that loops is refused below, in one line)
        real = output.resolve() if output.is_symlink() else output  # a save through a link moved its target aside
        restore_replaced_folders(real.parent, real.name)
    existed = output.exists()
    before = folder_identity(output)
    # In any case, as the other choices are taken (an unknown one is refused by the settings, naming them): --backbone and
    # --fusion-mode too (regression probe 2026-12-06: only --detector was).
    detector, backbone = spelled_as_choice(detector, FIT_DETECTORS), spelled_as_choice(backbone, BACKBONES)
    fusion_mode = spelled_as_choice(fusion_mode, FUSION_MODES)
    try:
        # Every setting and the output path are checked before a single image is decoded.
        if extra_neighbourhood is not None and 0 in extra_neighbourhood and len(set(extra_neighbourhood)) > 1:
            # "0" (none) beside a size had silently meant the size (small-shop probe 2026-12-07).
            raise ConfigError(f"--extra-neighbourhood 0 (none) is given with {', '.join(str(s) for s in extra_neighbourhood if s)}", None,
                              "give 0 alone for the 3 x 3 bank alone, or the sizes alone")
        settings = InspectorSettings(
            backbone=backbone,
            image_size=image_size,
            coreset_ratio=coreset_ratio,
            standardize=standardize,
            detector=detector,
            false_alarm_target=false_alarm_target,
            global_weight=global_weight,
            extra_neighbourhoods=None if extra_neighbourhood is None else tuple(s for s in extra_neighbourhood if s != 0),
            seed=seed,
        )
        try:
            MemoryBankConfig(coreset_ratio=coreset_ratio)
        except ValueError as exc:
            raise ConfigError(str(exc), None, "pass --coreset-ratio in (0, 1]") from None
        require_replaceable_folder(output, Inspector.is_model_dir, "model")
        require_outside_models(output, "model")  # before the work, as save refuses it
        replaced, worked = describe_model_in(output), worked_thresholds(output)
        if replaced is not None:
            # Room for a model about the size of the one it replaces, before the work: a full disk had been found out after the
            # whole fit, where calibrate refuses it first (lifecycle probe 2026-12-08).
            require_room(output.parent, model_copy_room(output), "new model (about the size of the one it replaces)")
        else:
            require_room(output.parent, MIN_ROOM, "new model")  # written whole beside the folder, then swapped in
        if taxonomy is not None:
            # Named by the user: a bad one is a usage error here, as it is for a zero-shot model.
            load_taxonomy(taxonomy)
        if detector in NO_NORMAL_DETECTORS:
            if grounding is not None:
                raise ConfigError(f"--detector {detector} cannot be fused with --grounding", None, "drop --grounding, or use --detector memory-bank")
            # Options for fitting on normal images would be accepted and do nothing: said, not ignored.
            unused = [name for name, given in (
                ("--coreset-ratio", coreset_ratio != InspectorSettings.coreset_ratio), ("--max-images", max_images != 0),
                ("--false-alarm-target", false_alarm_target != InspectorSettings.false_alarm_target),
                ("--global-weight", global_weight != InspectorSettings.global_weight), ("--extra-neighbourhood", extra_neighbourhood is not None),
                ("--fusion-weight", fusion_weight is not None), ("--fusion-mode", fusion_mode != "sum"), ("--seed", seed != 0),
            ) if given]
            if unused:
                raise ConfigError(f"{', '.join(unused)} set how a model is fitted on normal images; --detector {detector} fits on none",
                                  None, f"drop {', '.join(unused)}")
            if not category_dir.is_dir():
                # Not read, but a mistyped folder is a mistake the user should hear of.
                what = "is a file, not a folder" if category_dir.exists() else "no such folder"
                raise DatasetLayoutError(what, category_dir, "pass the part's folder (its taxonomy.json, if any, goes with the model)")
            # Nothing to fit and no image to read (CATEGORY_DIR may hold none): the folder records
            # the settings and the part's taxonomy, and inspect compares the images read together.
            part = taxonomy or (category_dir / TAXONOMY_FILE if (category_dir / TAXONOMY_FILE).is_file() else None)
            if part is not None:
                load_taxonomy(part)  # refused, as --taxonomy's is (a note had let the model go without it)
            held = _part_files(output)
            carried = _carried_taxonomy(part)
            relation = part_relation(output, carried, None)
            Inspector.fit([], settings).save(output, taxonomy=carried)
            _note_replaced(replaced, output, held, relation, carried is not None, worked)
            console.print(f"{escape(str(detector))} model: no normal image needed;"
                          f" inspect at least 8 images of the part at once → {escape(str(output))}")
            # Its one blind spot, said where the model is made: what most of a batch shares looks normal.
            console.print("[yellow]note:[/] parts are judged against the others read with them: a lot in which most parts carry "
                          "the same defect can pass whole; inspect lots mixed with known-good parts")
            return
        if (plain := _plain_normal_folder(category_dir)) is not None:
            # A folder of good parts' images, as a line has them (or an MVTec train/good itself).
            paths, good_dir, taxonomy_file = plain
            # A train/good given itself is not said to have none (own-dataset probe 2026-12-07).
            what = ("is a dataset's train/good: fitting on the images in it and its subfolders" if is_train_good(good_dir)
                    else "has no train/good folder: fitting on the image files in it")
            console.print(f"[yellow]note:[/] {escape(str(category_dir))} {what} ({len(paths)}; any unreadable is listed), as images of "
                          "normal parts")
        else:
            readable_dir = path_is(category_dir, "dir") and unreadable_folder(category_dir) is None
            if readable_dir and not any(path_is(folder_any_case(category_dir, n), "dir") for n in ("train", "test")):
                # An empty folder: both ways to fit are said (small-shop probe 2026-12-07: only the MVTec layout had been).
                raise DatasetLayoutError("holds no images", category_dir, "put the normal parts' images in it (a plain folder of them is "
                                         "fitted on), or lay it out as MVTec-AD does: normal images in train/good/")
            category = load_category(category_dir)
            notes(category.notes)
            # Where they were read: "Train/Good" from Windows is read too, and recorded as it is named.
            good_dir = folder_any_case(category_dir, "train", "good")
            paths, taxonomy_file = category.require_train_good(), category.taxonomy_path
        # Every check on the grounding side first: a bad model or taxonomy fails before fitting.
        ground = _grounding_for_fit(grounding, taxonomy or taxonomy_file, fusion_mode, fusion_weight)
        if taxonomy is None and taxonomy_file is not None:
            # The part's own taxonomy.json is refused as --taxonomy's is, before the fit: a misspelt key had cost the model its
            # taxonomy after the fit, said in a note, exit 0 (own-dataset probe 2026-12-07).
            load_taxonomy(taxonomy_file)
        # Before the work, as the save refuses it: a person's labelled examples are not another part's model's to delete.
        require_part_files_kept(output, taxonomy or taxonomy_file, str(good_dir.resolve()))
        if max_images > 0:
            paths = paths[:max_images]
        if len(paths) < MIN_FIT_IMAGES:
            raise DatasetLayoutError(
                f"{len(paths)} normal image(s) to fit on; at least {MIN_FIT_IMAGES} are needed "
                "(each is scored against the others to set the thresholds)",
                good_dir,
                f"put at least {MIN_FIT_IMAGES} normal images there (and --max-images 0 or >= {MIN_FIT_IMAGES})",
            )
        note_cleaned(clean_stale_temporaries(output.parent, output.name))
        with progress_bar("checking", len(paths)) as advance:
            # Each image decoded once to check it, then read again as the fit encodes it: the
            # pixels of every normal image are never held at once.
            images, failures = scan_images(paths, advance)
        report_failures(failures)
        if len(images) < MIN_FIT_IMAGES:
            raise DatasetLayoutError(
                f"only {len(images)} of the normal images could be read; at least {MIN_FIT_IMAGES} are needed",
                good_dir,
                "fix or replace the files listed above",
            )
        # The bar counts the images fitted on, copies once (it stopped at "5/6"); the fit leaves them out
        # itself, so that its warning is kept in the model's notes and card.
        n_distinct = len(set(images.digests))
        # The bank and a discriminator each read every image: the bar counts both passes (it read "120/60").
        passes = 2 if detector == "bank+discriminator" else 1
        then = "fitting: training the discriminator" if detector == "discriminator" else "fitting: building the bank"
        started = time.perf_counter()
        with progress_bar("fitting", passes * n_distinct, then=f"{then}, setting the thresholds") as advance:
            inspector = Inspector.fit(images, settings, advance, *ground) if ground else Inspector.fit(images, settings, advance)
        # The whole fit: a bank fused with a partner summarises the bank's part only (0.2 s of 10).
        seconds = time.perf_counter() - started
        # Kept with the model, on its card: where its normal images came from, and what of them could not be read
        # (a line engineer's card said "training images 40" and nothing of the folder or the 2 files skipped).
        if inspector.provenance is not None:
            inspector.provenance = replace(inspector.provenance, trained_on=str(good_dir.resolve()))
        if failures and inspector.fit_summary is not None:
            skipped = f"{len(failures)} file(s) could not be read and were left out (e.g. {failures[0].message})"
            inspector.fit_summary = replace(inspector.fit_summary, notes=(*inspector.fit_summary.notes, skipped))
        with saving_in(output):  # another fit's check waits for this save, and sees it
            if folder_identity(output) != before:
                # Two fits into one folder both said "fitted → M", the later silently replacing the other (interruption probe).
                raise OutputError(f"another run saved a model here while this fit ran ({describe_model_in(output) or 'a folder'}); "
                                  "this fit's model is not saved over it", output,
                                  "fit again into this folder to replace that model, or into another")
            # The part's taxonomy goes with the model: `inspect`, the service and the reports read it from there.
            held = _part_files(output)
            carried = _carried_taxonomy(taxonomy or taxonomy_file)
            relation = part_relation(output, carried, inspector.trained_on)
            inspector.save(output, taxonomy=carried)
        _note_replaced(replaced, output, held, relation, carried is not None, worked)
        summary = inspector.fit_summary
        assert summary is not None  # Inspector.fit always records one
    except DefectlensError as exc:
        raise fail(exc) from None
    except ValueError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        # The model folder is swapped in whole (Inspector.save): an interrupted fit leaves the old one,
        # unless the interrupt came in the moment after the swap.
        if folder_identity(output) != before:
            raise interrupted(f"the new model was saved in {output} just before the interrupt") from None
        raise interrupted(f"no model written; {output} is as it was" if existed else f"no model written ({output} not made)") from None
    t = inspector.thresholds
    console.print(
        f"fitted on {summary.n_images} images ({summary.n_holdout} held out for thresholds) in {seconds:.1f} s; "
        f"{_what_was_fitted(inspector, summary)}; thresholds image {t.image:.3f}, pixel {t.pixel:.3f} → {escape(str(output))}"
    )
    if failures:
        raise typer.Exit(EXIT_PARTIAL)


def _what_was_fitted(inspector: Inspector, summary: FitSummary) -> str:
    """The fit's closing words on what it built: "bank 6004 of 60040 patches" said of a
    discriminator read as an empty, broken model, and of two banks it named only the first."""
    detector = getattr(inspector.detector, "primary", inspector.detector)  # a fused model: its memory bank
    if not summary.bank_size:
        return f"discriminator trained on {summary.n_patches} patches"
    said = f"bank {summary.bank_size} of {summary.n_patches} patches"
    if extra := [n for n in getattr(detector, "neighbours", []) if getattr(n, "bank", None) is not None]:
        sizes = ", ".join(f"{n.config.neighbourhood}×{n.config.neighbourhood}: {int(n.bank.shape[0])}" for n in extra)
        said += f" (and neighbourhood bank(s) {sizes})"
    if inspector.settings.detector == "bank+discriminator":
        said += ", and a discriminator"
    if isinstance(fused := inspector.detector, FusedDetector):
        # A probe's fused fit said nothing of a grounding model that counts for nothing.
        weight = float(fused.config.weight or 0.0)
        said += f"; fused with the {fused.secondary.name} model at weight {weight:g}"
        if weight == 0:
            why = ": too few normal images to choose a weight on" if fused.weight_chosen_on == 0 else ""
            said += f" (verdicts are the {fused.primary.name}'s{why})"
    return said


def _plain_normal_folder(folder: Path) -> tuple[list[Path], Path, Path | None] | None:
    """``(images, folder, taxonomy)`` when ``folder`` is a plain folder of normal images to fit on
    (no ``train/`` in it; an MVTec ``train/good`` given itself included), else None.
    The taxonomy is the folder's ``taxonomy.json``, or for ``train/good`` the category's."""
    if not folder.is_dir():
        return None
    if (why := unreadable_folder(folder)) is not None:
        # Before looking into it: a folder listed but not entered had been refused as "FOLDER/train: permission denied", a
        # folder that is not there (regression probe 2026-12-07).
        require_readable([(folder, why)], "fit on another folder")
    if folder_any_case(folder, "train").is_dir():
        return None
    # Named whole where it was given as "." or "..": the model records the folder it was fitted on.
    folder = Path(os.path.abspath(folder)) if folder.name in ("", ".", "..") else folder
    found = normal_folder_images(folder)
    images, said, train_good = found.images, found.notes, found.train_good
    if not images:
        # A dataset without train/ (its test/ alone) is read as one, and said so there.
        return None
    notes(said)
    # A train/good's category is where the folder is, a link to it followed.
    where = Path(os.path.realpath(folder) if train_good else os.path.abspath(folder))
    above = where.parent.parent if train_good else where
    part = next((d / TAXONOMY_FILE for d in (where, above) if (d / TAXONOMY_FILE).is_file()), None)
    return images, folder, part


def require_cue_reader(cue: str | None, zero_shot: bool, model_dir: Path) -> str:
    """Refuse a --cue given for a model that does not read one (only a zero-shot grounding model
    does: on any other it was accepted and did nothing; `--cue batch`, the default, was accepted and
    `--cue token` refused); the cue to use otherwise."""
    if cue is not None and not zero_shot:
        raise ConfigError(f"--cue {cue} is for zero-shot grounding models, and this is a {kind_of_model(model_dir)} model", model_dir, "drop --cue")
    return cue or DEFAULT_CUE


def kind_of_model(folder: Path) -> str | None:
    """The kind of model ``folder`` holds (None: not a model; "unreadable": a model folder whose descriptor does not read, where
    :func:`~defectlens.descriptor.model_kind` says None), for a command's words on a folder it was given."""
    if not Inspector.is_model_dir(folder):
        return None
    try:
        return read_descriptor(folder).detector
    except DefectlensError:
        return "unreadable"


def _written_before(path: Path, moment: float) -> bool:
    """Whether the file at ``path`` was last written before ``moment`` (a time.time() value)."""
    try:
        return path.stat().st_mtime < moment
    except OSError:
        return False


def _short_name(name: str, most: int = 80) -> str:
    """``name`` as a note shows it: whole up to ``most`` characters, else its start and end around "…"."""
    return name if len(name) <= most else f"{name[: most // 2 - 1]}…{name[-(most // 2 - 1):]}"


def _part_files(folder: Path) -> list[str]:
    """What ``folder`` holds about its part (:data:`~defectlens.descriptor.PART_FILES`), before a fit replaces it."""
    return [name for name in PART_FILES if (folder / name).exists()]


def _note_replaced(described: str | None, output: Path, held: Sequence[str], relation: str, with_taxonomy: bool,
                   worked: str | None = None) -> None:
    """Say which model a fit replaced (a calibrated model or a trained grounding model takes work
    to make again, and a fit of another part over it was said as 'the memory-bank model'), and what
    it ``held`` about its part (:meth:`Inspector.save` keeps all but another part's): not kept, of another part, or kept though
    the part cannot be told (``relation`` "untold": :func:`~defectlens.inspector.part_relation`), the taxonomy but for a fit
    ``with_taxonomy``; and, where the thresholds replaced were ``worked`` (set by hand or calibrated), that they must be set again:
    a note alone had said it, and the refit ran on its label-free ones (lifecycle probe 2026-12-08: 7 % false alarms, not 0)."""
    if described is None:
        return
    gone = part_files_note(held, [name for name in held if (output / name).exists()], relation, with_taxonomy)
    # Through a link, the folder linked to is the one replaced, named (lifecycle probe 2026-12-08: "current" was said, and
    # "v1" it linked to — the version kept to roll back to — was the one written over).
    shown = f"{output} (a link to {os.path.realpath(output)})" if output.is_symlink() else str(output)
    notes([f"{shown}: the {described} that was there is replaced{gone}"])
    if worked is not None:
        console.print(f"[yellow]warning:[/] the thresholds set by {escape(worked)} are not this fit's: it decides with its own label-free "
                      "ones until they are set again — `defectlens calibrate MODEL --good DIR --defective DIR` on the labelled parts "
                      "(or --threshold at inspect)")


def _carried_taxonomy(path: Path | None) -> Path | None:
    """``path`` when it is a valid taxonomy to keep in the model folder; else None, said in a note
    (a bad taxonomy costs the reports their wording, not the fit)."""
    if path is None:
        return None
    try:
        load_taxonomy(path)
    except DefectlensError as exc:
        console.print(f"[yellow]note:[/] the part's taxonomy is not kept with the model: {escape(str(exc))}")
        return None
    return path


def _grounding_for_fit(
    model_dir: Path | None, taxonomy_path: Path | None, mode: str, weight: float | None
) -> tuple[GroundingDetector, FusionConfig] | None:
    """The grounding detector and fusion settings for ``fit --grounding`` (None without it)."""
    try:
        # Checked with or without --grounding: a typo is refused, not silently ignored.
        config = FusionConfig(mode=mode, weight=weight)
    except ValueError as exc:
        raise ConfigError(str(exc), None, "use --fusion-mode sum|product and --fusion-weight in [0, 1]") from None
    if model_dir is None:
        if weight is not None or mode != "sum":
            # Accepted and unused, as the batch-scoring fit refuses them (hostile probe 2026-12-05).
            given = ", ".join(o for o, on in (("--fusion-weight", weight is not None), ("--fusion-mode", mode != "sum")) if on)
            raise ConfigError(f"{given} set how a grounding model is fused, and no --grounding is given", None,
                              "add --grounding MODEL_DIR, or drop them")
        return None
    # Loaded before the taxonomy is asked for: a mistyped model path is the first thing to fix.
    model = GroundingModel.load(model_dir)
    if taxonomy_path is None:
        raise ConfigError(
            "--grounding reads the part through its taxonomy, and the category has no taxonomy.json",
            model_dir,
            "pass --taxonomy or add taxonomy.json (object name and defect descriptions) to the category",
        )
    part = load_taxonomy(taxonomy_path, require_descriptions=True)
    return GroundingDetector(model, part, taxonomy_path, cue="token"), config


def _earlier_results(out_dir: Path) -> dict[str, dict]:
    """Every inspection JSON already in ``out_dir``, by output name (an earlier run's results).
    Report JSONs (``*.report.json``, one per image) are not opened, unless a report of their own
    stands beside them: ``a.report.json`` is the result of an input ``a.report.png`` when
    ``a.report.report.json`` is there (it had been missed, and replaced by ``a.png``'s report)."""
    try:
        names = {entry.name for entry in os.scandir(out_dir)}
    except OSError:  # no folder yet, or unreadable: nothing earlier
        return {}
    found: dict[str, dict] = {}
    for name in sorted(names):
        stem = name.removesuffix(".json")
        is_result = name.endswith(".json") and (not name.endswith(".report.json") or f"{stem}.report.json" in names)
        if is_result and (payload := read_inspection_json(out_dir / name)) is not None:
            found[stem] = payload
    return found


def _names_by_source(earlier: dict[str, dict], files: list[Path]) -> dict[Path, str]:
    """The output name an earlier run gave each of ``files`` (matched by the ``source`` it recorded)."""
    # Looked up, not compared pair by pair (an archive of 100 000 images), by the rule of same_source.
    by_text = {str(p): p for p in files}
    by_file = {os.path.realpath(p): p for p in files}
    found: dict[Path, str] = {}
    for name, payload in sorted(earlier.items()):
        text, file = payload.get("source"), payload.get("source_file")
        path = by_file.get(file) if isinstance(file, str) else by_text.get(text) if isinstance(text, str) else None
        if path is not None:
            found.setdefault(path, name)
    return found


def _of_another_file(payload: dict, path: Path) -> bool:
    """Whether an earlier result under ``path``'s output name is of another file. Results written
    before ``source_file`` are matched by the name as typed (:func:`same_source`) and inspected again
    when it differs, but one whose name resolves to this very file is not "of another file" (the note
    had said so of every image resumed by its absolute path)."""
    if same_source(payload, path):
        return False
    text = payload.get("source")
    return "source_file" in payload or not isinstance(text, str) or os.path.realpath(text) != os.path.realpath(path)


def _run_thresholds(inspector: Inspector) -> tuple[float, float] | None:
    """(image, pixel) thresholds this run decides with; None when the detector sets them per batch."""
    try:
        t = inspector.thresholds
    except RuntimeError:
        return None
    return float(t.image), float(t.pixel)


def _table_row(row: ResultRow) -> tuple[str, ...]:
    verdict = "[red]DEFECTIVE[/]" if row.defective else "[green]GOOD[/]"
    # Rich markup in a file name ("[red].png") must show as typed; a line break or direction mark in one as U+FFFD, as the
    # reports show it (regression probe 2026-12-06: "nl\nbreak.png" split a row in two, U+202E turned a name round).
    return (escape(plain_label(row.file)), verdict, f"{row.score:.3f}", str(row.n_regions), escape(plain_label(", ".join(row.types))))


TINY_TABLE_COLUMNS = 36
"""Below this terminal width each image is listed on two lines: its name, then its verdict, score and regions."""
NARROW_TABLE_COLUMNS = 60
"""Below this terminal width the results are listed unboxed, without the types (see :func:`results_table`)."""
TABLE_OVERHEAD = 16
"""Characters a five-column table spends on borders and padding (3 per column, 1 to close)."""
FULL_TABLE_ROWS = 50
"""Batches up to this many images get every row in the terminal; larger ones their flagged images
(every image is in summary.csv and index.html): 500 rows of "ok" bury the few that matter. Of
those, the :data:`FULL_TABLE_ROWS` highest scores at most: a lot where 1 248 of 2 976 tiles were
flagged printed a 1 259-line table."""


def results_table(rows: list[ResultRow], title: str, width: int) -> Table:
    """The terminal table of a batch: file names in full, folded onto more lines when long.

    The image column is given as much room as ``width`` leaves once the verdict, score and
    region count are shown whole and the types have at least 12 characters: a wider image
    column makes the table overflow a narrow terminal, which crops its right-hand columns.
    Above :data:`FULL_TABLE_ROWS` images only the defective ones are listed (the highest-scoring
    :data:`FULL_TABLE_ROWS` of them), and the caption says so. Under :data:`NARROW_TABLE_COLUMNS`
    the rows are listed unboxed, verdict, score and regions whole, the name last."""
    shown = rows if len(rows) <= FULL_TABLE_ROWS else [r for r in rows if r.defective]
    caption = None if shown is rows else f"{len(shown)} defective of {len(rows)} shown; every image is in summary.csv and index.html"
    if len(shown) > FULL_TABLE_ROWS:
        flagged = len(shown)
        shown = sorted(shown, key=lambda r: -r.score)[:FULL_TABLE_ROWS]
        caption = (f"the {FULL_TABLE_ROWS} highest-scoring of {flagged} defective images ({len(rows)} in all) shown; "
                   "every image is in summary.csv and index.html")
    cells = [_table_row(r) for r in shown]
    if width < TINY_TABLE_COLUMNS:
        # Too narrow even for that: at 20 columns the name's column had no room left and every row read "DEFECT… 94.… 3",
        # no image named (environment probe 2026-12-06). One column: the name, then what was found under it.
        tiny = Table(title=title, caption=caption, box=None, pad_edge=False, show_header=False)
        tiny.add_column("image", overflow="fold")
        for name, verdict, score, regions, _ in cells:
            tiny.add_row(f"{name}\n  {verdict} {score}, {regions} region(s)")
        return tiny
    if width < NARROW_TABLE_COLUMNS:
        # No room for five boxed columns: the verdict had folded to "DEF" / "ECT" / "IVE" and the score one
        # digit a line. Unboxed, the short cells first and whole, the name last (the types are in summary.csv).
        narrow = Table(title=title, caption=caption, box=None, pad_edge=False)
        narrow.add_column("verdict", no_wrap=True)
        narrow.add_column("score", no_wrap=True, justify="right")
        narrow.add_column("regions", no_wrap=True, justify="right")
        narrow.add_column("image", overflow="fold")
        for name, verdict, score, regions, _ in cells:
            narrow.add_row(verdict, score, regions, name)
        return narrow
    longest_name = max((len(r.file) for r in shown), default=5)
    others = len("DEFECTIVE") + max((len(c[2]) for c in cells), default=5) + len("regions") + min(12, max((len(c[4]) for c in cells), default=5))
    table = Table(title=title, caption=caption)
    # overflow="fold": a long file name wraps onto more lines instead of being cut with "…".
    table.add_column("image", overflow="fold", width=max(12, min(longest_name, width - TABLE_OVERHEAD - others)))
    for column in ("verdict", "score", "regions", "types"):
        table.add_column(column, overflow="fold")
    for row in cells:
        table.add_row(*row)
    return table


def inspect(
    ctx: typer.Context,
    model_dir: Annotated[
        Path,
        typer.Argument(
            help="Model directory: `defectlens fit` (memory bank; fused with a grounding model when fitted with --grounding) "
            "or `defectlens train-grounding` (zero-shot: needs --taxonomy), or a `defectlens export` of a fitted one (ONNX Runtime, OpenVINO)."
        ),
    ],
    # Not checked readable by the command line: one unreadable file refused the whole run as a usage error, where a batch
    # lists it as not inspected and goes on (regression probe 2026-12-07).
    inputs: Annotated[list[Path], typer.Argument(help="Images or folders of images; - reads paths from standard input, one a line "
                                                      "(or NUL-ended: find -print0).", readable=False)],
    output: Annotated[
        Path,
        typer.Option("-o", "--output", help="Folder for each image's JSON, overlay picture and report, and summary.csv + index.html "
                     "(outside every input folder and the model)."),
    ],
    taxonomy: Annotated[Path | None, typer.Option(help="taxonomy.json: defect names, descriptions, severity, impact, action.")] = None,
    examples: Annotated[
        Path | None,
        typer.Option(help="Labelled defect examples: an MVTec category (test/<type>/ + masks), a folder per type, or a saved classifier."),
    ] = None,
    k: Annotated[int | None, typer.Option(min=1, help="Examples per type drawn from an MVTec category given as --examples (default 5).")] = None,
    writer: Annotated[str, typer.Option(help="Report writer: template (instant) or llm (SmolLM2, verified).")] = "template",
    cue: Annotated[
        str | None,
        typer.Option(
            help=f"Zero-shot models only: token (SEG_DEFECT probability, works per image), batch (rarity across the images "
            f"inspected together; needs >= 8 images; best on the mean over held-out parts) or both (the two averaged). "
            f"Default: {DEFAULT_CUE}.",
            show_default=False,
        ),
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Skip images whose outputs in the output folder are complete (from an interrupted run).")
    ] = False,
    threshold: Annotated[
        float | None,
        typer.Option(help="Image threshold for this run only (the model keeps its own; `defectlens calibrate` sets and saves one)."),
    ] = None,
    engine: Annotated[str, typer.Option(help="local (this process) or ray (a pool of Ray workers; same outputs).")] = "local",
    address: Annotated[
        str | None, typer.Option(help="--engine ray: address of a running Ray cluster (default: start Ray on this machine).")
    ] = None,
    workers: Annotated[
        int,
        typer.Option(min=0, help="--engine ray: worker processes (0 = as many as fit: one per CPU for an exported model, "
                     "one per N CPUs for a PyTorch model on N threads)."),
    ] = 0,
    fail_on_defect: Annotated[
        bool, typer.Option("--fail-on-defect", help=f"Exit with status {EXIT_DEFECTIVE} when any part is judged defective, or good in another "
                                            "view than the training images' (not passed; for scripts and CI).")
    ] = False,
    overlay: Annotated[
        str, typer.Option(help="Overlay picture format: png (exact), jpg (quality 90, about a seventh of the size, for a line "
                               "that keeps every overlay) or none (only the gallery's thumbnail: JSON, mask and report kept).")
    ] = "png",
) -> None:
    """Inspect images: JSON verdict, overlay picture and report per image, summary.csv and index.html, a table at the end.

    Regions are typed by the few-shot classifier when --examples is given, else from the
    taxonomy's descriptions (--taxonomy, or the one `fit` kept in the model folder). --engine ray
    spreads the batches over Ray workers that each load the model once.
    Exit status: 0 every image inspected, 3 some inputs skipped, 4 with --fail-on-defect: every input inspected and
    at least one part defective (or good in another view), 2 bad usage, 130 interrupted."""
    try:
        # Every option and the output folder are checked before any image is decoded or any file written.
        writer = require_choice("--writer", "report writer", writer, ("template", "llm"))
        if writer == "llm":
            from defectlens.explain.llm import find_gguf

            # Asked for by name: a model not installed is refused here, in one line with its fix (packaging probe 2026-12-06:
            # every report fell back to the template with exit 0, the cause in each report's notes only).
            find_gguf()
        overlay = require_choice("--overlay", "overlay format", overlay, OVERLAY_CHOICES)
        if cue is not None:
            cue = require_choice("--cue", "zero-shot cue", cue, CUES)
        if threshold is not None and not math.isfinite(threshold):
            raise ConfigError(f"--threshold must be a finite number, got {threshold}", None, "pass a score such as the one `defectlens fit` printed")
        engine = require_choice("--engine", "engine", engine, ENGINES)
        if engine != "ray" and (address is not None or workers):
            # Said, not ignored: the user meant to run on Ray and would otherwise run here unknowingly.
            raise ConfigError("--address and --workers are for --engine ray", None, "add --engine ray, or drop them")
        if engine == "ray":
            from defectlens.engine.ray_engine import require_ray

            require_ray()
        # Paths the user named must exist: a mistyped one is a usage error, not a note in every report.
        if taxonomy is not None and not taxonomy.is_file():
            what = "is a folder, not a taxonomy file" if taxonomy.is_dir() else "no such taxonomy file"
            raise ConfigError(what, taxonomy, "pass the part's taxonomy.json itself with --taxonomy")
        if examples is not None and not examples.is_dir():
            what = "is a file, not an examples folder" if examples.exists() else "no such examples folder"
            raise ConfigError(what, examples, "pass a folder of examples (DIR/<type>/*.png), an MVTec category or a saved classifier with --examples")
        if examples is not None and (examples / "examples").is_dir() and (examples / "calibration").is_dir():
            # An export-reviews folder given whole was refused as "no images in any type folder".
            raise ConfigError("is a folder written by `defectlens export-reviews`, whose examples are in its examples/ folder", examples,
                              f"pass {examples / 'examples'} with --examples (and its calibration/ folders to `defectlens calibrate`)")
        k = examples_to_draw(k, examples)
        inputs = with_listed_inputs(inputs)
        files, failures = expand_inputs(inputs)
        require_output_folder(output, inputs, files, model_dir)
        if examples is not None:
            # Results inside the examples folder would be read as examples by the next run.
            require_apart_from(output, [examples], "output folder")
        require_batch_results_writable(output, resume)
        needs = Inspector.needs_taxonomy(model_dir)
        cue = require_cue_reader(cue, needs, model_dir)
        # Loaded here with the Ray engine too: a bad model fails fast, before any worker starts.
        inspector, analysis = load_for_inspection(model_dir, taxonomy, cue, examples, k, writer, threshold)
        if not files:
            # Nothing to inspect (said once the model is known to load): an error, not an empty summary and gallery.
            listed = "; ".join(escaped_unshowable(f.message) for f in failures[:3]) + ("; …" if len(failures) > 3 else "")
            raise ConfigError(f"no image to inspect: {listed}")
        # A detector that compares the images read together says how many it needs: refused
        # here, before a single image is decoded.
        min_batch = int(getattr(inspector.detector, "min_batch", 1))
        if 0 < len(files) < min_batch:
            how = f"the {cue!r} cue" if needs else f"the {inspector.detector.name} detector"
            fix = f"inspect at least {min_batch} images of the part at once" + (", or pass --cue token" if needs else "")
            raise ConfigError(f"{how} compares the images inspected together and got {len(files)} (it needs {min_batch})", model_dir, fix)
    except DefectlensError as exc:
        raise fail(exc) from None
    notes(analysis.notes)
    if not analysis.taxonomy_unread and (untyped := untyped_reason(analysis.classifier, analysis.taxonomy, Inspector.needs_taxonomy(model_dir))):
        # Said once here: the table's types column was blank with the reason in each report only.
        notes([untyped])
    if threshold is None and (caveat := inspector.threshold_caveat):
        notes([f"this model: {caveat}"])
    normal = getattr(inspector.detector, "normal_stats", None)
    if threshold is not None and normal is not None and threshold < normal.image_median:
        # Allowed (a score scale may have negative values), but rarely meant: said before any image is read.
        console.print(f"[yellow]note:[/] --threshold {threshold:g} is below the normal images' median score ({normal.image_median:.3f}): "
                      "more than half of good parts will be flagged")
    elif threshold is not None and threshold < 0 and getattr(inspector.detector, "batch_relative", False):
        # Scores in robust sigmas of each batch: 0 is the batch's typical part.
        console.print(f"[yellow]note:[/] --threshold {threshold:g} is below 0, each batch's typical part on this model's scale: "
                      "more than half of every batch will be flagged")
    created = not output.exists()
    output.mkdir(parents=True, exist_ok=True)
    if created and not can_write(output):
        # Made, but not writable by its maker: every image had been inspected before each write failed, with a fix about
        # "free names or space" (environment probe 2026-12-06). A umask that does it is refused before (require_output_folder);
        # this is for what the umask does not show: a parent's default ACL, a file system that sets its own modes.
        mode = stat.S_IMODE(output.stat().st_mode)
        with contextlib.suppress(OSError):
            output.rmdir()
        raise fail(OutputError(f"the output folder was made with mode {mode:04o} and cannot be written (umask {0o777 & ~mode:04o}?)",
                               output, "set a umask that leaves you write permission (umask 022), or pass a folder you can write to"))
    try:
        # Held until the command ends: what is checked below (earlier results, their thresholds) stays true.
        ctx.call_on_close(lock_folder(output, "output folder"))
    except DefectlensError as exc:
        raise fail(exc) from None
    note_cleaned(clean_stale_temporaries(output))
    # Output names follow the order given, whatever order the batches are scored in, and no
    # two inputs share any output file (see unique_output_names).
    earlier = _earlier_results(output)
    current = _run_thresholds(inspector)
    mixed = {n: p for n, p in earlier.items() if recorded_thresholds(p) != current}
    if mixed and current is not None:
        # Made by another model or another --threshold: mixed into one folder (and, resumed, one
        # summary), a lower score would be flagged beside a higher one passed.
        name, payload = min(mixed.items())
        before = recorded_thresholds(payload)
        # What can still bring the first run's thresholds back, said as it is: --threshold sets the image one only, and
        # after a calibrate "resume with the model and --threshold of the first run" could not (audit probe 2026-12-07).
        earlier_ones = list(enumerate(inspector.earlier_thresholds, start=1))
        # And the fit's own label-free ones, which `--restore 0` brings back from its normal scores (a history trimmed, or a
        # model calibrated before it kept one, had been told "no option sets" them; regression probe 2026-12-07).
        stats = getattr(inspector.detector, "normal_stats", None)
        if stats is not None:
            earlier_ones.insert(0, (0, thresholds_from_normal(stats)))
        numbered = [n for n, e in earlier_ones if (e.image, e.pixel) == before]
        # A first run with --threshold: its pixel threshold is the model's then, its image threshold its own.
        by_pixel = [n for n, e in earlier_ones if e.pixel == before[1]]
        fit = payload["model"] if isinstance(payload.get("model"), dict) else {}
        same_fit = inspector.provenance is not None and fit.get("fitted_at") == inspector.provenance.fitted_at
        # The model's own thresholds, which this run's --threshold replaces: "resume without --threshold" only where they are
        # the first run's (after a calibrate that kept the pixel threshold it had sent the user round in a loop; probe).
        own = None
        if threshold is not None:
            with contextlib.suppress(DefectlensError):
                saved = read_descriptor(model_dir).thresholds or {}
                own = (saved.get("image"), saved.get("pixel"))
        if own == before:
            fix = "inspect into a new folder, or resume without --threshold, as the first run was made (with the model's own)"
        elif before[1] == current[1]:
            fix = f"inspect into a new folder, or resume with --threshold {before[0]!r} as the first run had it"
        elif numbered:
            which = "the fit's own label-free thresholds are" if numbered[-1] == 0 else f"its earlier thresholds no. {numbered[-1]} are"
            fix = (f"inspect into a new folder: the model has been calibrated since, and {which} the "
                   f"first run's (`defectlens calibrate MODEL --restore {numbered[-1]}` brings them back)")
        elif by_pixel:
            # (Regression probe 2026-12-07: a first run with --threshold, then a calibrate, had been told "another model".)
            which = "the fit's own label-free thresholds hold" if by_pixel[-1] == 0 else f"its earlier thresholds no. {by_pixel[-1]} hold"
            fix = (f"inspect into a new folder: the model has been calibrated since; {which} the "
                   f"first run's pixel threshold (`defectlens calibrate MODEL --restore {by_pixel[-1]}`, then resume with --threshold "
                   f"{before[0]!r})")
        else:
            made = "thresholds this fit no longer keeps" if same_fit else "another model"
            fix = f"inspect into a new folder: no option sets the first run's pixel threshold ({made} made them)"
        apart = [_told_apart(a, b) for a, b in zip(before, current, strict=True)]
        raise fail(ConfigError(
            # Each pair as it tells the two apart: at 6 digits, "image 61.1553" on both sides had read as no difference
            # (regression probes 2026-12-07).
            f"{len(mixed)} result(s) already there were inspected with other thresholds ({name}.json: image {apart[0][0]}, "
            f"pixel {apart[1][0]}, {payload.get('detector')}), this run's are image {apart[0][1]}, pixel {apart[1][1]} "
            "— another model, other thresholds of this one, or --threshold", output, fix,
        ))
    by_source = _names_by_source(earlier, files) if resume else None
    names, renamed = unique_output_names(files, INSPECTION_SUFFIXES, by_source, earlier)
    # A name kept from the run resumed was said by that run: not again at each resume (regression probe 2026-12-06).
    renamed = [(p, n) for p, n in renamed if not by_source or by_source.get(p) != n]
    # Shortened (a name too long for its results' file names keeps its start) apart from the ones that shared a name.
    shortened = [(p, n) for p, n in renamed if not n.startswith(p.stem)]
    for pairs, why in (([r for r in renamed if r not in shortened], "share output names with other inputs or earlier results; renamed"),
                       (shortened, "have names too long for their results' file names; shortened, with a digest of the whole name")):
        if pairs:
            # A 250-byte name shown whole, three times, filled the terminal (regression probe): its start and end are enough.
            listed = ", ".join(f"{_short_name(str(p))} → {_short_name(n)}" for p, n in pairs[:3]) + (", …" if len(pairs) > 3 else "")
            console.print(f"[yellow]note:[/] {len(pairs)} image(s) {why}: {escape(str(listed))}")
    shown = display_names(inputs, files)
    rows: dict[Path, ResultRow] = {}
    todo = files
    taken = {names[p] for p in files}
    # Made by another fit with the same thresholds (two batch-scoring models have 3 / 3), the results that stay beside this run's
    # mix two models' verdicts in one summary and gallery: refused as other thresholds are (lifecycle probe 2026-12-08). Those
    # this run redoes are its own; --resume keeps another fit's as done, and says so below.
    fit = cast("dict[str, str | None]", audit_record(inspector)["model"])
    # With --resume too: those among its inputs are kept as done and said below, but those that stay beside them had been listed in
    # one summary with two batch-scoring models' of other parts, as the refusal's fix advised (third regression probe 2026-12-07).
    if by_other := sorted(n for n in set(earlier) - taken if earlier[n].get("model") is not None and not same_model(earlier[n].get("model"), fit)):
        was = earlier[by_other[0]].get("model") or {}
        raise fail(ConfigError(
            f"{len(by_other)} result(s) already there were inspected by another model ({by_other[0]}.json: fitted at "
            f"{was.get('fitted_at')}; this one at {fit['fitted_at']}), with the same thresholds: their verdicts would be listed beside "
            "this run's in one summary", output, "inspect into a new folder, or move those results out of this one"))
    if stay := sorted(set(earlier) - taken):
        # Listed after this run's: a line that inspects into one folder day after day had its 1 122-row summary
        # replaced by the 10 images of the next run, the earlier results left on disk with nothing listing them.
        console.print(f"[yellow]note:[/] {len(stay)} earlier result(s) in {escape(str(output))} are not among these inputs (e.g. "
                      f"{escape(stay[0])}.json): they stay, listed in summary.csv after this run's {len(files)} image(s) and among "
                      "them on index.html, marked as earlier")
    others = [p for p in files if names[p] in earlier and _of_another_file(earlier[names[p]], p)]
    if others:
        console.print(f"[yellow]note:[/] {len(others)} earlier result(s) of other files under the same names are replaced "
                      f"(e.g. {escape(names[others[0]])}.json, which was {escape(str(earlier[names[others[0]]].get('source')))})")
    if resume:
        for path in files:
            # The JSON _earlier_results already read is not read again to check it.
            complete = completed_inspection(output, names[path], path, earlier.get(names[path])) is not None
            row = read_result(output, names[path], shown[path]) if complete else None
            if row is not None:
                rows[path] = row
        todo = [p for p in files if p not in rows]
        console.print(f"resuming: {len(rows)} image(s) already done, {len(todo)} to inspect")
        # Done images are not redrawn: a resume with another --overlay had left the folder in two formats without a word.
        if other_format := [r for r in rows.values() if r.overlay_suffix != OVERLAY_FORMATS.get(overlay, "")]:
            first = other_format[0]
            keep = (f"their {first.overlay_suffix} overlay (e.g. {escape(first.name + first.overlay_suffix)})" if first.overlay_suffix
                    else "no overlay (--overlay none)")
            console.print(f"[yellow]note:[/] {len(other_format)} image(s) already done keep {keep}; --overlay {overlay} "
                          "applies to the images inspected now")
        # Typed and worded with other examples, taxonomy or writer: kept as done, and said (stale types had shown as done).
        stamp = analysis.stamp()
        if typed_otherwise := [names[p] for p in rows if (earlier.get(names[p]) or {}).get("analysis") not in (None, stamp)]:
            console.print(f"[yellow]note:[/] {len(typed_otherwise)} image(s) already done were typed and reported with other examples, "
                          f"taxonomy or --writer (e.g. {escape(typed_otherwise[0])}.json): they stay as they were; run again without "
                          "--resume to redo them")
        # Made by another fit with the same thresholds (a refit, thresholds set to the first's): kept as done, and said
        # (determinism probe 2026-12-06: one summary held two fits' verdicts without a word).
        if other_fit := [names[p] for p in rows if (recorded := (earlier.get(names[p]) or {}).get("model")) is not None
                         and not same_model(recorded, fit)]:
            was = (earlier.get(other_fit[0]) or {}).get("model") or {}
            console.print(f"[yellow]note:[/] {len(other_fit)} image(s) already done were inspected by another fit of the model (e.g. "
                          f"{escape(other_fit[0])}.json, fitted at {escape(str(was.get('fitted_at')))}; this one {escape(str(fit['fitted_at']))}): "
                          "they stay as they were; run again without --resume to redo them")
        this_release = release_of(__version__)
        # Written before results recorded them (no "analysis" or "model"): kept as done, and said — they had been taken as made
        # with this run's taxonomy and fit without a word, where a result that records another is noted (automation probe).
        if unrecorded := [names[p] for p in rows if not {"analysis", "model"} <= set(earlier.get(names[p]) or {})]:
            by = (earlier.get(unrecorded[0]) or {}).get("defectlens_version")
            console.print(f"[yellow]note:[/] {len(unrecorded)} image(s) already done were written by "
                          f"{escape('defectlens ' + str(by)) if by else 'an earlier defectlens'}, which did not record the fit, "
                          f"taxonomy, examples or --writer that made them (e.g. {escape(unrecorded[0])}.json): they stay as they were; "
                          "run again without --resume to redo them")
        # Written by an earlier version that recorded them: their reports keep its wording (0.3.3's "medium (2.1% of the
        # image)" beside this one's "medium marked area"; upgrade probe 2026-12-06).
        elif older := [names[p] for p in rows if released_before((earlier.get(names[p]) or {}).get("defectlens_version"), this_release)]:
            by = ", ".join(sorted({str((earlier.get(name) or {}).get("defectlens_version")) for name in older}))
            console.print(f"[yellow]note:[/] {len(older)} image(s) already done were written by defectlens {escape(by)} (e.g. "
                          f"{escape(older[0])}.json), whose reports word some things otherwise: they stay as they were; run again "
                          "without --resume to redo them")
        # Saved over since its results were written (a camera's hot folder reuses names): redone, and said.
        if changed := [p for p in todo if names[p] in earlier and changed_since_inspected(earlier[names[p]], p)]:
            console.print(f"[yellow]note:[/] {len(changed)} image(s) changed since their results were written (e.g. "
                          f"{escape(shown[changed[0]])}): they are inspected again")
        # Written by a version before the region mask file: redone, and said why (it read "0 already done").
        if without_mask := [p for p in todo if names[p] in earlier and not (output / f"{names[p]}{MASK_SUFFIX}").is_file()]:
            console.print(f"[yellow]note:[/] {len(without_mask)} earlier result(s) have no region mask ({MASK_SUFFIX}, written since "
                          "2026-12-05): they are inspected again")
    title = f"defectlens — {len(files)} image(s)"
    run_started = time.time()
    if basis := inspector.verdict_basis:
        # Said where the run is watched, not only in each report (regression probe 2026-12-05).
        console.print(f"[yellow]note:[/] {escape(basis)}")
    if resume and inspector.compares_batch:
        # Scores relative to their batch: the images left are inspected in the batches the first run
        # planned (their finished batch-mates rewritten as they were), so a resumed run writes what an
        # uninterrupted one would have. Left alone they were too few to compare and never finished.
        batches = [b for b in Inspector.plan_batches(files, inspector.batch_size, seed=0, copies_together=True) if any(p not in rows for p in b)]
        mates = sum(p in rows for b in batches for p in b)
        if mates:
            console.print(f"[yellow]note:[/] scored with their batch: {mates} finished image(s) of those batches are inspected again, as they were")
    else:
        batches = Inspector.plan_batches(todo, inspector.batch_size, seed=0, copies_together=inspector.compares_batch)
    try:
        with progress_bar("inspecting", sum(len(b) for b in batches)) as advance:

            def record(outcome: BatchOutcome) -> None:
                failures.extend(outcome.failures)
                for warning in outcome.warnings:
                    console.print(f"[yellow]warning:[/] {len(outcome.written)} image(s) of one batch: {escape(warning)}")
                for path in outcome.written:
                    # Read back from the files just written (by this process or a Ray worker):
                    # resumed and new images are one list, read one way.
                    row = read_result(output, names[path], shown[path])
                    if row is not None:
                        rows[path] = row
                    else:
                        # Said written, not here: a Ray worker that wrote elsewhere left a run of "0 inspected", exit 0.
                        failures.append(Failure(str(path), f"{path}: inspected, but its results are not in {output} — fix: check that "
                                                           "nothing moves them away (with --engine ray: a path every node sees), and run "
                                                           "again with --resume"))
                advance(outcome.n_inputs)

            if engine == "ray":
                from defectlens.engine.ray_engine import RayOptions, WorkerSpec, run_on_ray, threads_note

                spec = WorkerSpec(model_dir, taxonomy, cue, examples, k, writer, output, threshold, overlay)
                if threads := threads_note(spec):
                    console.print(f"[yellow]note:[/] {escape(str(threads))}")
                run_on_ray(spec, batches, names, RayOptions(address, workers), record,
                           say=lambda note: console.print(f"[yellow]note:[/] {escape(note)}"))
            else:
                # Seeded random batches (see Inspector.plan_batches); each image's files are
                # written as soon as its batch is scored.
                for batch in batches:
                    record(inspect_and_write(inspector, analysis, batch, names, output, overlay))
    except KeyboardInterrupt:
        # Images of the interrupted batch whose files were complete count as done (their JSON,
        # written last, is the marker); the summary and gallery cover them all for review.
        for path in files:
            if path not in rows and completed_inspection(output, names[path], path) is not None:
                row = read_result(output, names[path], shown[path])
                if row is not None:
                    rows[path] = row
        # The images not reached are listed as such: a summary of the done ones alone read as a
        # whole batch.
        left = [(shown[p], "not inspected: the run was interrupted; run again with --resume") for p in files if p not in rows]
        # Best effort on the way out: a summary that cannot be written (a full disk) must not hide
        # the interruption's own message, and --resume writes it anyway.
        with contextlib.suppress(DefectlensError):
            write_batch_results(output, [rows[p] for p in files if p in rows] + _earlier_rows(output, earlier, stay),
                                f"{title}, interrupted: {len(left)} not inspected", left)
        # An earlier run's complete results count as done, said apart: a re-run interrupted at its start had read
        # "46 of 46 image(s) done … run again with --resume to finish" (interruption probe).
        earlier_done = sum(1 for p in files if p in rows and _written_before(output / f"{names[p]}.json", run_started))
        done_words = f"{len(rows)} of {len(files)} image(s) done" + (
            # Resumed, they were left on purpose, done (scale probe: "run again to redo them" read as 623 stale results).
            (f" ({earlier_done} of them from an earlier run)" if resume else
             f" ({earlier_done} of them an earlier run's results this run had not reached: run again to redo them)") if earlier_done else "")
        finish = "; run again with --resume to finish" if left else ""
        raise interrupted(f"{done_words}, results in {output}{finish}") from None
    except DefectlensError as exc:
        if created and not any(output.iterdir()):
            # Refused before any image was done (Ray not reachable, say): leave no empty folder behind.
            output.rmdir()
        raise fail(exc) from None
    # Files removed while the run went on (the output folder deleted, say) are not results: the
    # summary listed them and the gallery linked to nothing.
    for path in [p for p in files if p in rows]:
        if not has_all_files(output, names[path], overlay=rows[path].overlay_suffix != ""):
            del rows[path]
            failures.append(Failure(str(path), f"{path}: its results were removed from {output} while the run went on — "
                                               "fix: run again with --resume"))
    done = [rows[p] for p in files if p in rows]
    # An image whose new results could not be written keeps its earlier run's, whole (an image's files are one unit):
    # listed as they stand on disk, said not inspected again. The summary and gallery of a re-run on a full disk had
    # left them out, as if gone (regression probe 2026-12-06).
    stood: dict[str, ResultRow] = {}
    for f in failures:
        path = Path(f.source)
        complete = path in names and path not in rows and completed_inspection(output, names[path], path) is not None
        if complete and (row := read_result(output, names[path], shown[path])) is not None:
            reason = f.message.removeprefix(f"{f.source}: ")
            stood[f.source] = replace(row, warning=f"an earlier run's result: not inspected again by this run ({reason})")
    # Inputs not inspected are listed in the summary and gallery too, not only on this terminal, in the inputs' order.
    # The file has its own column: the reason without the path the message starts with (it showed twice).
    # The terminal's list in that order too (it had followed the batches'); inputs refused before any batch come first.
    order = {str(p): i for i, p in enumerate(files)}
    failures.sort(key=lambda f: order.get(f.source, -1))
    skipped = [(shown.get(Path(f.source), f.source), f.message.removeprefix(f"{f.source}: ")) for f in failures if f.source not in stood]
    # Inspected and not inspected counted apart ("235 image(s), 1 not inspected" read as one of the 235).
    title = f"defectlens — {len(done)} image(s) inspected" + (f", {len(skipped) + len(stood)} input(s) not inspected" if skipped or stood else "")
    kept = [replace(row, earlier=True) for row in [stood[str(p)] for p in files if str(p) in stood] + _earlier_rows(output, earlier, stay)]
    # Where they are in each: after this run's in summary.csv, among them by score on the page (which had said "after").
    listed = title + (f"; {len(kept)} earlier result(s) in this folder kept beside them" if kept else "")
    # Which model and when, on the page: galleries of two runs had read alike in a browser's tabs and an archive (gallery probe).
    listed += f" — model {model_dir}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    try:
        summary_path, gallery_path = write_batch_results(output, done + kept, listed, skipped, unwritten=len(files) - len(done))
    except DefectlensError as exc:
        # The images whose files failed too (a full or read-only disk fails them all) are listed
        # first: the summary was all that would have listed them.
        report_failures(failures)
        fail(exc)
        raise typer.Exit(EXIT_PARTIAL if failures else 2) from None
    # No empty table under a run that inspected nothing: its title says so.
    console.print(results_table(done, title, console.width) if done else f"[bold]{escape(title)}[/]")
    if drift := rows_drift(done):
        # Over the run, once: focus or light drifting since the fit raises false alarms with no image over the frame check's
        # limit (drift probe 2026-12-06: 9 of 14 good cookies blurred by σ = 2 flagged, nothing said).
        console.print(f"[yellow]warning:[/] {escape(drift)}")
    elif unlike := unlike_summary(done):
        # Fewer than the drift note needs (or not most of the run): the table showed such an image as any DEFECTIVE one with
        # its types blank, the reason in its files alone (camera probe 2026-12-06).
        console.print(f"[yellow]note:[/] {escape(unlike)}")
    if views := view_summary(done):
        # A rotated or half-cropped cookie was a confident "crack", its size said in the report's notes alone (camera probe 2026-12-06).
        console.print(f"[yellow]warning:[/] {escape(views)}")
    if writer == "llm" and (fell_back := sum(r.writer == "template (llm fallback)" for r in done)):
        # Said here, not only in each report: every report of a run could be the template's unseen.
        console.print(f"[yellow]note:[/] the language model's text was not used for {fell_back} of {len(done)} report(s) "
                      "(rejected by the checks, or the model failed): those are the template's, and each report's notes say why")
    if writer == "llm" and (not_asked := sum(r.writer == "template" for r in done)):
        # Not counted as rejected: the model is not asked about them (regression probe 2026-12-06).
        console.print(f"[yellow]note:[/] the language model was not asked about {not_asked} of {len(done)} image(s), unlike every normal "
                      "one (the template says so)")
    console.print(f"summary → {escape(str(summary_path))}; gallery → {escape(str(gallery_path))}")
    report_failures(failures)
    console.print(f"results in {escape(str(output))}")
    if failures:
        # Before the verdicts: a run that skipped inputs did not judge every part (summary.csv lists both).
        raise typer.Exit(EXIT_PARTIAL)
    if fail_on_defect and (defective := sum(r.defective for r in done)):
        # Said, so a CI log shows why the step failed (CLI probe 2026-12-06: exit 4 and no word).
        console.print(f"{defective} of {len(done)} part(s) defective: exit status {EXIT_DEFECTIVE} (--fail-on-defect)")
        raise typer.Exit(EXIT_DEFECTIVE)
    if fail_on_defect and (other_views := sum(bool(r.view_note) for r in done)):
        # The report says such a part passes only once imaged as the training images show it: a gate had passed it (exit 0;
        # regression probe 2026-12-06).
        console.print(f"[yellow]note:[/] {other_views} part(s) judged good in another view than the training images have not passed: "
                      f"exit status {EXIT_DEFECTIVE} (--fail-on-defect); image them as the training images show them")
        raise typer.Exit(EXIT_DEFECTIVE)
    if fail_on_defect:
        # Said on a pass too: a CI log grepping for the gate's line found it only when the step failed (documentation probe
        # 2026-12-07).
        console.print(f"0 of {len(done)} part(s) defective: exit status 0 (--fail-on-defect)")


def _earlier_rows(output: Path, earlier: dict[str, dict], names: list[str]) -> list[ResultRow]:
    """The summary rows of earlier results in ``output`` that this run leaves as they are (``names``),
    each under the source it recorded; one whose files are incomplete is left out."""
    rows = (read_result(output, name, str(earlier[name].get("source") or name)) for name in names)
    return [row for row in rows if row is not None]


def info(
    model_dir: Annotated[Path, typer.Argument(help="Model directory (any kind: `defectlens fit` or `defectlens train-grounding`).")],
    check: Annotated[
        bool, typer.Option("--check", help="Also load every file of the model as `inspect` does, and say whether this defectlens can use it.")
    ] = False,
) -> None:
    """Print the model card: what was fitted, on what, and how its thresholds were set.

    Detector kind and encoder, training images and fingerprint, fit time, thresholds and how
    they were set, normal-score statistics, taxonomy.

    Read from the model's descriptor (inspector.json), as card.md beside it was written;
    nothing is loaded but that file unless --check is given (then a detector file or an export
    from another version is found, as `inspect` would find it). Exit status: 0 printed (and
    usable, with --check), 2 not a readable or usable model."""
    from rich.markdown import Markdown

    from defectlens.export import export_card_section, is_exported, read_export, source_changes

    try:
        require_standard_output("the model card")
        descriptor = read_descriptor(model_dir)
        card = render_card(descriptor) + part_card_section(model_dir)
    except DefectlensError as exc:
        raise fail(exc) from None
    if is_exported(model_dir):
        # An exported folder says so, as its card.md does: which runtime, which file, how close to PyTorch (model_card's
        # composition, its export's record read here once: a damaged one is said on its own, below).
        try:
            export_record = read_export(model_dir)
            card += export_card_section(export_record)
            if changed := source_changes(export_record, descriptor.thresholds):
                # An export went stale unseen when its model was calibrated again (export probe 2026-12-06).
                console.print(f"[yellow]note:[/] the model this was exported from has changed since: {escape(changed)}")
        except DefectlensError as exc:
            console.print(f"[yellow]note:[/] exported, but its export record does not check: {escape(str(exc))}")
    # As card.md has it: a folder named in Latin-1 bytes written as \xe9 (Python's stand-ins for them had ended `info` in a
    # UnicodeEncodeError under a UTF-8 locale; regression probe 2026-12-07).
    card = printable_text(card)
    if card_console.is_terminal and (card_console.encoding or "").lower().replace("-", "").startswith("utf"):
        card_console.print(Markdown(card))
    else:
        # Piped or saved: the card's Markdown as written, lines whole (rendered for 80 columns, the
        # training set's sha256 was cut in two, "…bfa43fdb74…"); so on a terminal that is not UTF-8, whose rendering
        # failed on the card's "×" (regression probe 2026-12-06).
        write_standard_output(card if card.endswith("\n") else card + "\n")
    if not (model_dir / CARD_FILE).is_file():
        console.print(f"[yellow]note:[/] {escape(str(model_dir))} has no {CARD_FILE} (written before model cards); re-save it to write one")
    if check:
        if Inspector.needs_taxonomy(model_dir):
            console.print("check: a zero-shot grounding model loads with a part's taxonomy (`inspect --taxonomy`); not loaded here")
            return
        try:
            loaded = Inspector.load(model_dir)
            _require_card_thresholds(descriptor.thresholds, loaded.thresholds, model_dir)
            if (kept := part_taxonomy(model_dir)) is not None:
                # The part's taxonomy is a file of the model too: one that does not read had passed the check, every region
                # of `inspect` and the service then untyped (Windows-inputs probe 2026-12-06).
                load_taxonomy(kept)
        except DefectlensError as exc:
            raise fail(exc) from None
        console.print("check: every file of the model loads with this defectlens")


def _require_card_thresholds(recorded: dict | None, used: Thresholds, model_dir: Path) -> None:
    """Raise when the descriptor's record of the thresholds (what the card shows) is not what the
    detector's files hold (what `inspect` uses): a hand-edited inspector.json would mislead."""
    if not recorded:
        return
    for name in ("image", "pixel"):
        value, actual = recorded.get(name), float(getattr(used, name))
        try:
            same = isinstance(value, int | float) and math.isclose(float(value), actual, rel_tol=1e-6, abs_tol=1e-9)
        except OverflowError:  # an integer no float holds (it had been a traceback)
            same = False
        if not same:
            raise ModelFileError(
                f"inspector.json records the {name} threshold as {value!r} but the detector's files, which `inspect` uses, hold {actual:g}",
                model_dir / DESCRIPTOR_FILE,
                "set thresholds with `defectlens calibrate` (it rewrites both), or re-save the model",
            )


SAMPLE_CATEGORY = "commutator"
"""The real sample that ships in the repository (``examples/commutator``, KolektorSDD, CC BY-NC-SA 4.0)."""


def bundled_samples() -> Path:
    """The repository's ``examples/`` folder: from the working folder (``make demo`` runs in the
    repository), else beside the source tree of an editable install."""
    here = Path("examples")
    if (here / SAMPLE_CATEGORY).is_dir():
        return here
    return Path(__file__).resolve().parents[3] / "examples"


def demo(
    ctx: typer.Context,
    category: Annotated[str, typer.Option(help="Category under the data root.")] = SAMPLE_CATEGORY,
    data_root: Annotated[
        Path | None,
        typer.Option(help="Folder of categories (default: the repository's examples/ sample; e.g. ../shared/datasets for the others)."),
    ] = None,
    output: Annotated[Path, typer.Option("-o", "--output")] = Path("demo_out"),
    n_images: Annotated[int, typer.Option(min=1, help="Test images to inspect.")] = 16,
    max_train: Annotated[int, typer.Option(min=0, help="Normal images to fit on (0 = all).")] = 200,
) -> None:
    """Fit, calibrate and inspect in one go: with no options, on the sample in examples/.

    Fits on a real category, inspects a few test images, prints the table and writes overlays,
    summary.csv and index.html. With no options: the commutator sample in examples/ (no other data needed).

    When the category holds validation/good and validation/<type> (labelled parts apart
    from test/), the thresholds are calibrated on them (F1-optimal) before inspecting.

    When the category holds examples/<type>/ (defect images without masks), regions are typed
    from them: the fitted model locates the defect in each example first."""
    root = (data_root or bundled_samples()) / category
    if not root.is_dir():
        # Installed from a wheel, the sample is not there: it lives in the repository (its licence,
        # CC BY-NC-SA, is not the package's), and "category not found" under site-packages said nothing of that.
        if data_root is None and bundled_samples().is_dir():
            # A clone, asked for a category it holds no sample of (it read "run the demo in a clone": CLI probe 2026-12-06).
            shipped = ", ".join(sorted(p.name for p in bundled_samples().iterdir() if p.is_dir())) or "none"
            console.print(f"[red]error:[/] no {escape(category)} sample in {escape(str(bundled_samples()))} (it holds: {escape(shipped)}) — fix: "
                          "pass --data-root with a folder of categories in the MVTec-AD layout (e.g. ../shared/datasets)")
        elif data_root is None:
            # Not the path under site-packages, which means nothing to the user (packaging probe 2026-12-06).
            console.print(f"[red]error:[/] no demo sample here: the {category} sample ships with the repository, not the installed "
                          "package — fix: run the demo in a clone of the repository, or pass --data-root with a folder of categories "
                          "in the MVTec-AD layout")
        else:
            console.print(f"[red]error:[/] {escape(str(root))}: category not found"
                          " — fix: pass --data-root with a folder of categories in the MVTec-AD layout (e.g. ../shared/datasets)")
        raise typer.Exit(2)
    model_dir = output / "model"
    fit(root, model_dir, max_images=max_train)
    validation = root / "validation"
    folders = sorted(d for d in validation.iterdir() if d.is_dir()) if validation.is_dir() else []
    good = [d for d in folders if is_good_folder(d)]
    bad = [d for d in folders if not is_good_folder(d)]
    if good and bad:
        # The first-day flow: check and move the threshold on labelled parts the test never sees.
        # F1-optimal: a handful of good parts cannot show a 3 % false-alarm rate, and held to it the
        # threshold rose above every good part's score: the sample's demo passed all 8 of its cracks.
        from defectlens.cli.calibrate import calibrate  # here: calibrate builds on this module

        calibrate(model_dir, good, bad, f1=True, plot=output / "roc.png")
    else:
        # Said: the README's "fit → calibrate → inspect" had skipped its middle step without a word (README probe 2026-12-06).
        console.print(f"[yellow]note:[/] not calibrated: {escape(str(root))} has no validation/good and validation/<type> folders of "
                      "labelled parts; the fit's label-free thresholds judge the images")
    tests = load_category(root).test
    # A fixed, spread-out pick: a few normal images and a few of each defect type.
    by_type: dict[str, list] = {}
    for item in tests:
        by_type.setdefault(item.defect_type, []).append(item.path)
    picks: list[Path] = []
    while len(picks) < n_images and any(by_type.values()):
        for paths in by_type.values():
            if paths and len(picks) < n_images:
                picks.append(paths.pop(len(paths) // 2))
    taxonomy = root / "taxonomy.json"
    examples = root / "examples"
    # Sorted: the table lists them in path order, as `inspect` lists a folder's images.
    inspect(
        ctx, model_dir, sorted(picks), output / "inspections",
        taxonomy=taxonomy if taxonomy.is_file() else None, examples=examples if examples.is_dir() else None,
    )
    inspections = output / "inspections"
    # Where everything went, for a script: on standard output, as `evaluate --json -` and `info` write theirs (it went to stderr).
    if sys.stdout is not None:  # closed (>&-): the results are in their files all the same
        written = {"model": str(model_dir), "inspections": str(inspections), "gallery": str(inspections / "index.html")}
        write_standard_output(json_text(written, indent=None) + "\n")
