"""The `evaluate` command: a model scored against a labelled test set (an MVTec category, or good and defective folders),
and the checks of a labelled set it shares with `calibrate`."""

from __future__ import annotations

import contextlib
import os
from collections import Counter
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from defectlens.cli.progress import (
    console,
    fail,
    interrupted,
    keep_notes,
    notes,
    progress_bar,
    require_standard_output,
    write_standard_output,
)
from defectlens.cli.vision import (
    EXIT_PARTIAL,
    expand_inputs,
    kind_of_model,
    note_cleaned,
    repeated_names_note,
    report_failures,
    require_choice,
    require_cue_reader,
)
from defectlens.descriptor import camera_mismatch_words, part_taxonomy
from defectlens.detect import WORKING_PIXELS
from defectlens.detect.calibration import MIN_DEFECTIVE_FOR_RECALL, step_of
from defectlens.detect.grounding.detector import CUES, DEFAULT_CUE
from defectlens.engine import (
    Locator,
    audit_record,
    prepare_analysis,
    type_with_notes,
)
from defectlens.errors import ConfigError, DatasetLayoutError, DefectlensError, OutputError, shortage_caught
from defectlens.inspector import (
    NO_NORMAL_DETECTORS,
    Inspector,
    short_of,
)
from defectlens.io import (
    Category,
    clean_stale_temporaries,
    json_text,
    labelled_category,
    load_category,
    write_bytes_atomic,
    write_json_atomic,
)
from defectlens.io.dataset import copies_among, cross_label_copies, first_names, is_good_folder, mask_places_note, require_readable
from defectlens.io.outputs import (
    require_output_file,
    stream,
)
from defectlens.taxonomy import load_taxonomy
from defectlens.types import Inspection, RegionType

if TYPE_CHECKING:
    import numpy as np  # annotations only: NumPy is not imported at the command line's start-up


def require_no_good_folder(defective_given: list[Path], defective_files: list[Path]) -> None:
    """Refuse a folder of good parts given as defective, or found below a folder given so (``test/``
    holding ``good/``): `evaluate` had typed its images "good" and counted them good, while `calibrate`
    counted them defective (regression probe 2026-12-05)."""
    for given in defective_given:
        if is_good_folder((given if given.is_dir() else given.parent).resolve()):
            raise ConfigError("a folder of good parts was given as defective", given, f"pass it with --good {given}")
    for image in defective_files:
        for given in (g for g in defective_given if g.is_dir() and image.is_relative_to(g)):
            parts = image.relative_to(given).parts
            if len(parts) > 1 and is_good_folder(folder := given / parts[0]):
                raise ConfigError("a folder of good parts is inside a folder given as defective", folder,
                                  f"pass the defective types' folders themselves with --defective, and {folder} with --good")


def require_one_label(good: list[Path], defective: list[Path]) -> None:
    """Refuse images given both as good and as defective (a defective folder holding good/ too): one label
    had silently won, in `calibrate` and in `evaluate --good --defective`."""
    # realpath, not resolve: a symlink loop is an unreadable input listed later, not a traceback here.
    both = sorted({os.path.realpath(p) for p in good} & {os.path.realpath(p) for p in defective})
    if both:
        raise DatasetLayoutError(f"{len(both)} image(s) given as both good and defective (e.g. {both[0]})", None,
                                 "give each image one label: keep the good and the defective images in separate folders")
    # The same picture under two names had the label of whichever came first in each count.
    if same := cross_label_copies(good, defective):
        copy, first = same[0]
        raise DatasetLayoutError(f"{len(same)} defective image(s) are copies of good ones, pixel for pixel (e.g. {copy} is {first})", None,
                                 "give each part one label: remove the copy from the folder it does not belong in")


def _labelled_folders(good: list[Path], defective: list[Path]) -> Category:
    """The test split of `evaluate --good --defective`: each defective image typed by the folder it was
    given in, or by its first subfolder there (``defects/crack/…``), or by its own folder for an image given
    alone; unreadable inputs said as notes."""
    for given in [*good, *defective]:
        if not given.exists():
            # A note and exit 0 had been said of a mistyped folder (calibrate refuses it).
            raise DatasetLayoutError("no such file or folder", given, "check the path given with --good or --defective")
    unreadable: list[tuple[Path, str]] = []
    # Said as evaluate does (regression probe 2026-12-07: "each file is inspected once" of --good's repeats).
    good_files, problems = expand_inputs(good, unreadable=unreadable, what="good input", done="evaluated")
    typed: list[tuple[Path, str]] = []
    for given in defective:
        files, failed = expand_inputs([given], masks_expected=True, unreadable=unreadable)
        problems += failed
        # The folder given, or for images in its subfolders the first subfolder (defects/crack/… is a crack).
        typed += [(f, _type_folder(given, f)) for f in files]
    # A file given twice by two names (a folder and a link to it, one relative and one absolute) is one image, its first: each
    # counted once in the metrics, as it is inspected once (regression probe 2026-12-07: said inspected once, counted twice).
    unique, repeated = first_names([f for f, _ in typed])
    kind_of: dict[Path, str] = {}
    for f, kind in typed:
        kind_of.setdefault(f, kind)
    typed = [(f, kind_of[f]) for f in unique]
    once = [repeated_names_note(repeated, "defective input", "evaluated")] if repeated else []
    # Refused, as a dataset's folder that cannot be read is: reported as a note, the figures of the rest had ended with status 0
    # (regression probe 2026-12-07).
    require_readable(unreadable, "leave it out of --good and --defective")
    require_no_good_folder(defective, [p for p, _ in typed])
    require_one_label(good_files, [p for p, _ in typed])
    for count, what, folders in ((len(good_files), "good", good), (len(typed), "defective", defective)):
        if not count:
            raise DatasetLayoutError(f"no {what} images: the evaluation compares good and defective parts and needs both",
                                     ", ".join(map(str, folders)), f"pass a folder holding images of {what} parts")
    category = labelled_category(good_files, typed, Path(os.path.commonpath([p.resolve() for p in [*good, *defective]])), defective)
    category.notes += [f.message for f in problems] + once
    return category


def _type_folder(given: Path, image: Path) -> str:
    """The defect type of ``image`` found under the folder ``given`` with --defective: the first subfolder
    below it that holds it, else the folder's own name (the image's folder, for an image given alone)."""
    if not given.is_dir():
        return image.parent.resolve().name
    parts = image.relative_to(given).parts
    return parts[0] if len(parts) > 1 else given.resolve().name


def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model directory: `defectlens fit` or `defectlens train-grounding`, or an export of one.")],
    category_dir: Annotated[
        Path | None, typer.Argument(help="Category folder with test/ and ground_truth/ (or give --good and --defective instead).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the metrics to this JSON file ('-': to standard output).")] = None,
    good: Annotated[
        list[Path] | None, typer.Option("--good", help="Instead of a category: folder (or image) of good parts, as `calibrate` takes them.")
    ] = None,
    defective: Annotated[
        list[Path] | None,
        typer.Option("--defective", help="With --good: folder (or image) of defective parts, typed by the folder's name (or, for "
                                         "images in its subfolders, the subfolder's); masks as "
                                         "`calibrate` reads them (<stem>_mask.* (any image format) beside each image or in masks/)."),
    ] = None,
    types_k: Annotated[
        int,
        typer.Option(
            "--types-k",
            min=0,
            help="Also score defect types, as `inspect` gives them, on the defective images the model flags: k labelled examples per "
            "type are drawn (seed 0) from the test split and excluded (0 = off); the confusion matrix goes beside --json "
            "(NAME.confusion.png), else to CATEGORY.confusion.png in the current folder.",
        ),
    ] = 0,
    examples: Annotated[
        Path | None,
        typer.Option("--examples", help="Also score defect types as `inspect --examples DIR` gives them, with these labelled examples "
                                        "(one folder per type, e.g. MODEL_DIR/examples or an export's examples/), on the defective "
                                        "images the model flags; instead of --types-k."),
    ] = None,
    cue: Annotated[
        str | None,
        typer.Option(help=f"Zero-shot models only: token, batch or both (see `inspect --help`). Default: {DEFAULT_CUE}.", show_default=False),
    ] = None,
) -> None:
    """Score a model on a labelled test split: AUROC, AP, F1-max, AUPRO, speed, operating point.

    The split is a category's test/ (MVTec layout), or folders labelled by option: --good and
    --defective, as `calibrate` takes them.

    Image and pixel AUROC, AP and F1-max, AUPRO, speed and memory, and the
    operating point: the model's image threshold with its recall and false-alarm rate there
    (plus, for reference only, the threshold that would give 1 % false alarms); with --types-k,
    defect-type accuracy, macro-F1 and a confusion-matrix image too.

    Exit status: 0 every test image evaluated, 3 some were skipped, 2 bad usage, 130 interrupted."""
    # Imported here, not with the CLI: scikit-learn behind them costs every other command 0.6 s of start-up.
    from defectlens.evaluate.classification import confusion_figure_png, evaluate_detected_types
    from defectlens.evaluate.harness import evaluate_detection
    from defectlens.evaluate.roc import PlotUnavailable

    said = keep_notes()  # what qualifies the figures, in the JSON too

    try:
        # Options and the output path first: a bad one must not cost a whole evaluation.
        if cue is not None:
            cue = require_choice("--cue", "zero-shot cue", cue, CUES)
        # '-' is standard output (a file named '-' had been written); the table goes to stderr as always.
        to_stdout = json_out is not None and str(json_out) == "-"
        if to_stdout:
            require_standard_output("--json - (the metrics)")
        if (category_dir is None) == (good is None and defective is None) or (good is None) != (defective is None):
            raise ConfigError("evaluate takes a category folder, or --good and --defective folders", category_dir,
                              "pass CATEGORY_DIR (with test/), or both --good DIR and --defective DIR")
        if types_k > 0 and examples is not None:
            raise ConfigError("--types-k draws examples from the test split, --examples takes them from a folder", examples,
                              "pass one of them")
        if types_k > 0 and category_dir is None:
            raise ConfigError("--types-k draws examples from a category's test/ folders", None, "pass a category folder for --types-k")
        if json_out is not None and not to_stdout:
            inputs = [category_dir] if category_dir else [*(good or []), *(defective or [])]
            require_output_file(json_out, "metrics JSON", kept=[model_dir, *inputs])
        if category_dir is None:
            category = _labelled_folders(good or [], defective or [])
            category_dir = category.root
        else:
            category = load_category(category_dir)
        notes(category.notes)
        # A zero-shot grounding model reads the part through the category's own taxonomy.
        zero_shot = Inspector.needs_taxonomy(model_dir)
        cue = require_cue_reader(cue, zero_shot, model_dir)
        taxonomy_path = category.taxonomy_path if zero_shot else None
        if zero_shot and taxonomy_path is None:
            raise ConfigError(
                "a zero-shot grounding model reads the part through its taxonomy, and this category has no taxonomy.json",
                category_dir, "put the part's taxonomy.json (object name, defect descriptions) in the category folder",
            )
        part = load_taxonomy(taxonomy_path, require_descriptions=True) if taxonomy_path is not None else None
        inspector = Inspector.load(model_dir, part, cue)
        if caveat := inspector.threshold_caveat:
            notes([f"this model: {caveat} (the operating point's figures below are those of such thresholds)"])
        n = len(category.require_test())
        n_defective = sum(item.is_defective for item in category.require_test())
        if getattr(inspector.detector, "batch_relative", False) and n_defective > n / 2:
            # Said before the run: a probe read AUROC 0.931 beside recall 0 on cookie (70 % defective) with no word why.
            notes([f"{n_defective} of the {n} test images are defective: a batch-relative model judges each part against the others read "
                   "with it, so where most are defective the defective look typical and the recall at its threshold is low; "
                   "AUROC ranks them all the same"])
        if types_k > 0:
            # Every image of a type drawn as an example leaves none to type: "accuracy nan" on 0 images.
            per_type = Counter(item.defect_type for item in category.require_test() if item.is_defective)
            if per_type and types_k >= min(per_type.values()):
                rarest = min(per_type, key=lambda t: per_type[t])
                # "--types-k 0 or less" had been the fix for a type of one image: 0 turns type scoring off (metrics probe 2026-12-07).
                most = per_type[rarest] - 1
                raise ConfigError(f"--types-k {types_k} draws every {rarest} image ({per_type[rarest]}) as an example, leaving none to type",
                                  category_dir, f"pass --types-k {most} or less" if most > 0 else
                                  f"add {rarest} test images until it has more than {types_k}, or type against examples kept apart: --examples DIR")
        # Examples without masks located by the model, as `inspect --examples` has them: the whole image had been the
        # example here, so the accuracy was another classifier's (layout probe 2026-12-06).
        # The part's taxonomy as `inspect` reads it (the model's own; a zero-shot model's is the category's): a type it lacks is
        # reported unknown, and said.
        part_types = taxonomy_path or part_taxonomy(model_dir)
        analysis = prepare_analysis(part_types, category_dir, types_k, "template", locator=Locator.of(inspector)) if types_k > 0 else None
        if examples is not None:
            # The examples a line uses (a model's examples/, an export's): the loop of reviews, exported examples and
            # their effect on the types could not be measured (loop probe 2026-12-06).
            analysis = prepare_analysis(part_types, examples, 5, "template", locator=Locator.of(inspector), examples_required=True)
            # A test image copied in as an example (an export's are the line's images) is not typed by itself.
            copied = copies_among([t.path for t in category.test if t.is_defective], [Path(p) for p in analysis.excluded])
            analysis.excluded |= {str(p) for p in copied}
            if copied:
                analysis.notes.append(f"{len(copied)} defective test image(s) are copies of examples (e.g. {copied[0]}): not typed")
        with progress_bar("evaluating", n) as advance:
            evaluation, scored = evaluate_detection(inspector, category, advance, keep_images=analysis is not None)
        if part_types is not None:
            # Each type as the part's taxonomy spells it, as the types' figures name it: a test folder "Crack" had been the
            # key of the per-type AUROC beside "crack" in the types' (metrics probe 2026-12-07). A taxonomy that cannot be
            # read leaves the folders' names (it is said where the types are scored).
            with contextlib.suppress(DefectlensError):
                taxonomy = load_taxonomy(part_types)
                spelt = [spec.name if (spec := taxonomy.get(t)) else t for t, _ in evaluation.per_type_image_auroc]
                # Two folders one type in two spellings keep their own names: one's figure had been lost under the other's
                # (regression probe 2026-12-07; the two are said as one type in two spellings). The others are respelt.
                shared = Counter(spelt)
                evaluation.per_type_image_auroc = [(name if shared[name] == 1 else folder, v)
                                                   for name, (folder, v) in zip(spelt, evaluation.per_type_image_auroc, strict=True)]
    except DefectlensError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        raise interrupted("evaluation stopped before the metrics; nothing written") from None
    result = evaluation.to_json()
    # What made these figures, as an inspection JSON records it: a CI job comparing runs across upgrades and refits could
    # not tell them apart (automation probe 2026-12-06).
    made = audit_record(inspector)
    result.update({"evaluated_at": made.pop("inspected_at"), **made, "model_dir": os.path.realpath(model_dir),
                   # The fit's settings, the seed too: two fits of one folder with other options (an A/B choice of model) had
                   # the same training-set fingerprint and nothing else to tell them apart (own-dataset probe 2026-12-07).
                   "model_settings": asdict(inspector.settings)})
    # Beside the metrics they qualify (found once, by the evaluation), and only for a model fitted on
    # those training images: batch scoring and a zero-shot model read none.
    if (leaked := evaluation.copies_of_train) and kind_of_model(model_dir) not in NO_NORMAL_DETECTORS and not zero_shot:
        # Not "test/ or train/good/": neither is there with --good/--defective (regression probe 2026-12-06).
        notes([f"{len(leaked)} test image(s) are copies of training images (e.g. {leaked[0]}): the metrics flatter the "
               "model — take them out of the test images, or out of the training folder and fit again"])
    tested = {str(t.path): t.is_defective for t in category.test}  # test image → defective (failures of others: masks)
    if evaluation.n_good == 0 or evaluation.n_defective == 0:
        # The image metrics null and the rate "n/a", exit 0, had come with no word of why (own-dataset probe 2026-12-07).
        missing = "good" if evaluation.n_good == 0 else "defective"
        # Not "no folder holds one" where the images are there but could not be read (regression probe 2026-12-07).
        unread = any(tested.get(f.source) == (missing == "defective") for f in evaluation.failures)
        why, fix = (("none could be read: see the inputs skipped", "repair or replace them") if unread
                    else ("none among the test images", f"add {missing} test images"))
        # The pixel metrics' n/a said too where there is no defect pixel to find (metrics probe 2026-12-07).
        also = "are the recall at the threshold, the pixel metrics and AUPRO (no defect pixel to find)" if missing == "defective" \
            else "is the false-alarm rate at the threshold"
        notes([f"no {missing} test image was scored ({why}): image AUROC, AP and F1-max compare good and defective images, so they are "
               f"null, and so {also} — {fix}"])
    if 0 < min(n_good := evaluation.n_good, n_bad := evaluation.n_defective) < MIN_DEFECTIVE_FOR_RECALL:
        # Said as calibrate says it of a set this small (small-shop probe 2026-12-07: AUROC 1.0000 on 1 good and 2 defective
        # images had been printed as any other); of the images scored, not those listed (metrics probe 2026-12-07: an unreadable
        # one had been counted in the steps).
        notes([f"{n_good} good and {n_bad} defective test image(s) scored: false alarms move in steps of {step_of(n_good)}, recall in steps "
               f"of {step_of(n_bad)}, image AUROC by {1 / (n_good * n_bad):.2g} for each pair ranked wrong — a coarse guide; evaluate on more "
               "labelled images to rely on the figures"])
    if calibrated_on := evaluation.calibrated_on_test:
        notes([f"{len(calibrated_on)} test image(s) are images the model's thresholds were calibrated on (e.g. {calibrated_on[0]}): "
               "recall and false alarms at the threshold are measured on images it was chosen for — evaluate on other labelled parts "
               "for figures of the line (AUROC, AP and the pixel metrics do not depend on the threshold)"])
    elif calibrated_on is None:
        notes([f"the model's thresholds were calibrated ({evaluation.threshold_source}) by a defectlens that did not record on which "
               "images (0.3.8 or earlier): if those were test images, recall and false alarms at the threshold are measured on images "
               "it was chosen for — calibrate again to have them recorded"])
    if repeated := evaluation.repeated_test:
        notes([f"{len(repeated)} test image(s) are copies of other test images, pixel for pixel (e.g. {repeated[0]}): each counts in the metrics "
               "as often as it appears — take the copies out for figures of distinct parts"])
    if strides := evaluation.pixel_strides:
        read = ", ".join(f"{n} image(s) at every {'2nd' if k == 2 else '3rd' if k == 3 else f'{k}th'} pixel" for k, n in sorted(strides.items()))
        notes([f"pixel metrics: images over {WORKING_PIXELS:,} pixels are read on a lattice each way ({read}); their maps "
               "hold no finer detail, and the figures moved by 0.0024 or less where checked (README: 'Pixel metrics are streamed')"])
    if evaluation.no_mask:
        # A mask among the skipped inputs, not any input (regression probe 2026-12-07: pointed there for unreadable images).
        masks_failed = any(f.source not in tested for f in evaluation.failures)
        # None found at all: where they were looked for (a contractor's groundtruth/ folder had gone unsaid: messy-masks probe).
        where = (f"; {mask_places_note([Path(p) for p in evaluation.no_mask])}" if len(evaluation.no_mask) == evaluation.n_defective
                 and not masks_failed else "")
        # Said once, with the files: these images count for the image metrics only. A note of the figures, kept in the JSON's
        # notes as the others (messy-masks probe 2026-12-07: printed only).
        notes([
            # Its cause named: a mask of the wrong size had been said to be "none, or an empty one" (layout probe 2026-12-06).
            f"{len(evaluation.no_mask)} defective image(s) have no usable ground-truth mask (none, an empty one, or "
            # The unreadable ones' own line is pointed to only when there is one (README probe 2026-12-06).
            f"one that could not be read{', listed with the skipped inputs' if masks_failed else ''}): "
            f"counted in the image metrics, left out of the pixel metrics: {', '.join(evaluation.no_mask)}{where}"
        ])
    if analysis is not None:
        notes(analysis.notes)
        if analysis.classifier is not None:
            chosen = analysis  # (named: mypy narrows `analysis` to not-None outside the function only)

            def type_image(image: np.ndarray, inspection: Inspection) -> list[RegionType] | None:
                with shortage_caught() as shortage:
                    typed = type_with_notes(chosen, image, inspection)[0]
                if shortage.of is not None:
                    # Left out of the type figures and listed: a shortage typing one image had ended the run, the detection
                    # metrics already made lost with it (regression probe 2026-12-07).
                    evaluation.failures.append(short_of(inspection.source, shortage.of, "not typed"))
                    return None
                # Named as the report names them (a type the part's taxonomy lacks is unknown there).
                return typed if chosen.taxonomy is None else [replace(t, defect_type=chosen.taxonomy.reported(t.defect_type)) for t in typed]

            # The classifier's types as the taxonomy spells them, as type_image names them.
            class_names = [n if analysis.taxonomy is None or analysis.taxonomy.get(n) is None else analysis.taxonomy.reported(n)
                           for n in analysis.classifier.class_names]
            # No k with examples given apart: the figure's title had said "k=0" of them (metrics probe 2026-12-07).
            types = evaluate_detected_types(scored, type_image, class_names, analysis.excluded, category.name,
                                            types_k if examples is None else None,
                                            analysis.taxonomy.names if analysis.taxonomy is not None else ())
            result["types"] = types.to_json() | ({"examples": os.path.realpath(examples)} if examples is not None else {})
            drawn = f"examples from {examples}" if examples is not None else f"k={types_k}"
            # None flagged, none typed: "accuracy nan, macro-F1 nan" had been printed (metrics probe 2026-12-07).
            figures = (f"accuracy {types.accuracy:.3f}, macro-F1 {types.macro_f1:.3f}" if types.n_images
                       else "accuracy and macro-F1 n/a: no defective image was flagged, so none was typed")
            console.print(f"defect types ({escape(drawn)}, as inspect gives them, on the {types.n_images} defective image(s) flagged; "
                          f"{types.n_not_flagged} passed, untyped): {figures}")
            # Beside a --json file; a stream (standard output, a pipe) has no "beside".
            beside = json_out is not None and not to_stdout and not stream(json_out)
            figure = json_out.with_suffix(".confusion.png") if beside and json_out else Path(f"{category.name}.confusion.png")
            try:
                write_bytes_atomic(figure, confusion_figure_png(types))
                console.print(f"confusion matrix → {escape(str(figure))}")
            except PlotUnavailable as exc:
                console.print(f"[yellow]warning:[/] {escape(str(figure))}: not drawn ({exc.strerror}); the evaluation's figures stand — "
                              f"fix: {exc.fix}")
            except (OSError, DefectlensError) as exc:
                # The figure is an extra: a folder it cannot be written in had cost the whole evaluation, its JSON unwritten
                # (regression probe 2026-12-07).
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
                where = ("move what is at that path, or pass --json in a folder you can write" if beside
                         else "pass --json FILE to have it beside that file, or run from a folder you can write")
                console.print(f"[yellow]warning:[/] {escape(str(figure))}: the confusion matrix could not be written ({escape(why)}); the "
                              f"evaluation's figures stand — fix: {where}")
    table = Table(title=f"{category.name}: {evaluation.n_test} test images")
    for header in ("metric", "value"):
        table.add_column(header, overflow="fold")  # on a narrow terminal "image_…" three times had named no metric (CLI probe)
    keys = ["image_auroc", "image_ap", "image_f1max", "pixel_auroc", "pixel_ap", "pixel_f1max", "aupro"]
    for key in keys:
        table.add_row(key, _metric_cell(result.get(key)))
    for key in ("ms_per_image", "fit_seconds", "peak_memory_mb"):
        # Measurements, not fractions: one decimal says all they can.
        value = result.get(key)
        table.add_row(key, f"{value:.1f}" if isinstance(value, float) else _metric_cell(value))
    table.add_row("runtime", evaluation.runtime)  # what the timing above timed
    # The operating point: what the model's own threshold does on this split.
    table.add_row("image_threshold", f"{_metric_cell(result['image_threshold'])} ({evaluation.threshold_source})")
    table.add_row("recall_at_threshold", _metric_cell(result["recall_at_threshold"]))
    target = result["false_alarm_target"]
    stated = f" (set for {target:.1%})" if target is not None else ""
    table.add_row("false_alarm_rate_at_threshold", _metric_cell(result["false_alarm_rate_at_threshold"]) + stated)
    reference = result["reference_1pct_false_alarms"]
    table.add_row("ref: threshold_1pct_fa", _metric_cell(reference["image_threshold"]))
    table.add_row("ref: recall_1pct_fa", _metric_cell(reference["recall"]))
    # Above 1 % only when the frame check alone flags more good images: then no threshold reaches it.
    table.add_row("ref: false_alarm_rate_1pct_fa", _metric_cell(reference["false_alarm_rate"]))
    console.print(table)
    console.print(
        f"operating point: {evaluation.n_defective} defective and {evaluation.n_good} good test images, flagged when score > threshold. "
        f"ref: the threshold flagging at most 1 % of the good test images and its recall — {escape(reference['note'])}."
    )
    unlike_good, unlike_defective = evaluation.unlike_normal
    if unlike_good or unlike_defective:
        grey = f"; {words}" if (words := camera_mismatch_words(evaluation.unlike_grey, evaluation.unlike_colour)) else ""
        notes([f"{unlike_good} good and {unlike_defective} defective test image(s) are unlike every normal one (frame check{grey}): "
               "flagged whatever their score, and counted so in the operating point"])
    if evaluation.drift:
        console.print(f"[yellow]warning:[/] the good test images: {escape(evaluation.drift)}")
    report_failures(evaluation.failures)
    # What was said of these figures, in the order said (notes, and warnings as "warning: …"): the terminal's alone before.
    result["notes"] = list(said)
    if to_stdout:
        write_standard_output(json_text(result) + "\n")
    elif json_out:
        note_cleaned(clean_stale_temporaries(json_out.parent, json_out.name))
        try:
            write_json_atomic(json_out, result, named=True)
        except DefectlensError as exc:
            raise fail(exc) from None
        except OSError as exc:
            # A disk that filled while the evaluation ran (the check before it saw room): one line, not a traceback (exit 1;
            # interruption probe 2026-12-06). The metrics are on the terminal above.
            raise fail(OutputError(f"could not be written ({exc.strerror or exc}); the metrics are printed above", json_out,
                                   "free space on its disk, or pass --json with a path on another")) from None
    if evaluation.failures:
        raise typer.Exit(EXIT_PARTIAL)


def _metric_cell(value: object) -> str:
    """A metric for the terminal table: 4 decimals for fractions and scores, n/a for undefined."""
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)


