"""`defectlens calibrate`: check and move a fitted model's thresholds with a few labelled images.

A model fitted on normal images sets its thresholds from held-out normal images alone (a
quantile of their scores). With a folder of good parts and one of defective parts the line
can see what that threshold does — recall and false-alarm rate — and move it: to the lowest
threshold that keeps false alarms under a target (``--max-false-alarms``, the default) or to
the F1-optimal one (``--f1``). The pixel threshold moves too when the defective images carry
masks (MVTec's ``<category>/ground_truth/<type>/<stem>_mask.png``, or, in any folder,
``<stem>_mask.png`` beside the image or in ``masks/``: :func:`defectlens.io.dataset.mask_for_image`);
otherwise, or with ``--keep-pixel-threshold``, it is kept.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from defectlens.cli.evaluate import require_no_good_folder, require_one_label
from defectlens.cli.progress import console, fail, interrupted, notes, progress_bar
from defectlens.cli.vision import EXIT_PARTIAL, expand_inputs, report_failures
from defectlens.descriptor import camera_mismatch_words, colour_reason_in, grey_reason_in, model_stamp, read_descriptor
from defectlens.detect.calibration import (
    DEFAULT_FALSE_ALARM_TARGET,
    allowed_false_alarms,
    labelled_pixels,
    percent,
    threshold_shift_notes,
    thresholds_from_labels,
    thresholds_from_normal,
)
from defectlens.errors import ConfigError, DatasetLayoutError, DefectlensError, OutputError
from defectlens.inspector import Failure, Inspector
from defectlens.io import clean_stale_temporaries, load_mask, write_bytes_atomic
from defectlens.io.atomic import require_not_mount_point
from defectlens.io.dataset import (
    exported_machine_masks,
    fitted_copies,
    mask_places_note,
    masks_for_images,
    picture_copies,
    picture_digest,
    require_readable,
)
from defectlens.io.images import image_digest
from defectlens.io.names import within_bytes
from defectlens.io.outputs import NAME_MAX, model_copy_room, require_output_file, require_room, require_writable_parent, saving_in
from defectlens.types import Thresholds

SCORE_BATCH = 16
"""Images decoded and scored together (bounds memory on large calibration sets)."""


@dataclass
class LabelledScores:
    """Scores of the calibration images and, where a mask exists, the pixels to set the pixel threshold."""

    labels: list[int]
    scores: list[float]
    pixel_labels: list[np.ndarray]
    pixel_values: list[np.ndarray]
    n_masked: int
    """Defective images with a ground-truth mask."""
    failures: list[Failure]
    unlike: list[bool] = field(default_factory=list)
    """Per image: the frame check found it unlike every normal image (flagged at any threshold)."""
    grey: list[bool] = field(default_factory=list)
    """Per image: of those, a grey image for a model fitted on colour ones (:data:`~defectlens.descriptor.GREY_REASON`)."""
    colour: list[bool] = field(default_factory=list)
    """Per image: of those, a colour image for a model fitted on grey ones (:data:`~defectlens.descriptor.COLOUR_REASON`)."""
    other_view: list[str] = field(default_factory=list)
    """Images of another size or shape than the training images' (a crop, a turned part), each with what was said of it."""
    digests: list[str] = field(default_factory=list)
    """The scored images' picture digests (:func:`~defectlens.io.images.image_digest`): what the thresholds were set on."""


PIXEL_SHIFT_NOTED = 0.02
"""A new pixel threshold further than this share from the old one is said to change regions and their types."""

MOUNTED_MODEL_FIX = "copy the model into a folder inside the mount point, and calibrate that copy"
"""The fix of a model folder that is a mount point (calibrate saves a model whole beside it and swaps it in)."""
READ_ONLY_MODEL_FIX = "calibrate a copy you can write (cp -r MODEL_DIR COPY), or see the new thresholds with --dry-run, which saves nothing"
"""What to do with a model folder calibrate cannot write: it has no output folder of its own, and "pass a folder you can
write to" had been its advice (locked-down host probe 2026-12-07)."""


def _score_files(inspector: Inspector, labelled: dict[Path, int], masks: dict[Path, Path], out: LabelledScores, advance) -> None:
    """Score the files of ``labelled`` (file: label, 1 = defective) into ``out``; keep map pixels when any defective file has
    a mask to set the pixel threshold with (``masks``: file → its mask).

    A detector that rates each image against the others read with it (batch scoring) reads
    good and defective parts mixed, in the seeded batches ``inspect`` would make: batches of
    one kind would each be judged against themselves."""
    files = list(labelled)
    per_label = Counter(labelled.values())
    if inspector.compares_batch:
        batches = Inspector.plan_batches(files, inspector.batch_size, seed=0)
    else:
        batches = [files[start : start + SCORE_BATCH] for start in range(0, len(files), SCORE_BATCH)]
    for batch in batches:
        # As `inspect` reads them: a batch this machine lacks the memory for is scored an image at a time, the image that needs
        # more than there is listed (it had ended the whole calibration; regression probe 2026-12-07).
        inspected = inspector.inspect_batch(batch)
        out.failures.extend(inspected.failures)
        for item in inspected.images:
            path, image, result = item.path, item.image, item.result
            label = labelled[path]
            out.labels.append(label)
            out.scores.append(result.score)
            out.unlike.append(result.unlike_normal is not None)
            # The picture as `evaluate` reads it to tell the calibration images among its test images (each frame at its own
            # depth): read at the model's depth, a dark 12-bit frame had another digest (regression probe 2026-12-07).
            out.digests.append(picture_digest(path) or image_digest(image))
            out.grey.append(grey_reason_in(result.unlike_normal))
            out.colour.append(colour_reason_in(result.unlike_normal))
            h, w = image.shape[:2]
            if result.unlike_normal is None and inspector.provenance and (note := inspector.provenance.size_note(w, h, result.frame_units)):
                out.other_view.append(f"{path}: {note}")
            if not masks:
                continue
            mask, mask_path = None, masks.get(path) if label else None
            if label and mask_path is None:
                continue
            if mask_path is not None:
                try:
                    mask = load_mask(mask_path, expected_size=(w, h))
                except DefectlensError as exc:
                    # One bad mask costs its pixels, not the run (it stopped the calibration midway).
                    out.failures.append(Failure(str(mask_path), f"{exc} (its image counts for the image threshold only)"))
                    continue
            # The rule Inspector.calibrate follows (detect.calibration.labelled_pixels): a good image's pixels all normal, an
            # empty mask none (its pixels, all counted normal, would move the threshold).
            sample = labelled_pixels(bool(label), mask, result.anomaly_map, per_label[label])
            if sample is None:
                out.failures.append(Failure(str(mask_path), f"{mask_path}: the mask is empty (its image counts for the image threshold only)"
                                                             " — fix: draw the defect in it, or remove it"))
                continue
            out.n_masked += bool(label)
            out.pixel_labels.append(sample[0])
            out.pixel_values.append(sample[1])
        advance(len(batch))


def _distinct_files(inspector: Inspector, good: list[Path], defective: list[Path]) -> tuple[list[Path], list[Path]]:
    """``good`` and ``defective`` without copies of one another (pixel for pixel) (the first of each kept), said once: a copy counts
    one part as two in the false-alarm rate. Copies of images in the model's training folder (when it is still there)
    are said when good — a bank fitted on them scores them near zero, flattering the false-alarm rate — and refused when
    defective (a normal part's image). Told by the pictures the model recorded it was fitted on (the images a ``--max-images``
    fit left out are then not said), else by its training folder's images."""
    copies = picture_copies([*good, *defective])
    if copies:
        copy, first = next(iter(copies.items()))
        console.print(f"[yellow]note:[/] {len(copies)} image(s) are copies of others, pixel for pixel (e.g. {escape(str(copy))} is "
                      f"{escape(str(first))}): each part counted once")
    distinct_good, distinct_bad = [p for p in good if p not in copies], [p for p in defective if p not in copies]
    trained = inspector.provenance.trained_on if inspector.provenance else None
    fitted_on = inspector.provenance.image_digests if inspector.provenance else None
    if fitted_on is not None or trained:
        if mislabelled := fitted_copies(distinct_bad, fitted_on, trained):
            # Named once, and no "training folder" where the model recorded only its pictures (fitted in Python; probe).
            # Headed by the defective images' folder: headed by the training folder, it had read as holding them (probe 2026-12-07).
            fitted_in = f" (in {trained})" if trained else ""
            raise DatasetLayoutError(f"{len(mislabelled)} defective image(s) are copies of images the model was fitted on{fitted_in}, normal "
                                     f"parts (e.g. {mislabelled[0]})", Path(mislabelled[0]).parent,
                                     "give each part one label: take the normal parts' images out of the defective ones")
        if seen := fitted_copies(distinct_good, fitted_on, trained):
            console.print(f"[yellow]note:[/] {len(seen)} good image(s) are copies of images the model was fitted on (e.g. "
                          f"{escape(str(seen[0]))}): a model fitted on them scores them near zero, which flatters the false-alarm "
                          "rate — calibrate on good parts it was not fitted on")
    return distinct_good, distinct_bad


def _require_own_thresholds(model_dir: Path) -> None:
    """Refuse a model whose thresholds are not its own to set: a zero-shot grounding model's cue sets one at each inspection."""
    if Inspector.needs_taxonomy(model_dir):
        raise ConfigError("a zero-shot grounding model keeps no threshold of its own (its cue sets one at each inspection)", model_dir,
                          "pass `inspect --threshold X` for a run, or calibrate a model written by `defectlens fit`")


def _save_thresholds(inspector: Inspector, model_dir: Path, loaded: object, thresholds: Thresholds,
                     calibrated_on: Iterable[str] | None = None) -> None:
    """Save ``thresholds`` (set by a calibration on the pictures ``calibrated_on``, :attr:`Inspector.calibrated_on`) into
    ``model_dir``, whole and swapped in (:meth:`Inspector.save`: a reader never sees half a model),
    unless the folder was written since it was ``loaded`` (:func:`model_stamp`): a fit (or another calibrate) meanwhile would
    have been put back over, the new fit lost without a word."""
    with saving_in(model_dir):  # another calibrate's or fit's check waits for this save, and sees it
        if model_stamp(model_dir) != loaded:
            raise ConfigError("was written again while calibrate ran; nothing saved, so that model stands", model_dir,
                              "run calibrate again on the model now there")
        inspector.use_thresholds(thresholds, calibrated_on)
        inspector.save(model_dir)


def _restore(model_dir: Path, number: int, dry_run: bool) -> None:
    """Set ``model_dir``'s thresholds back to its earlier ones numbered ``number`` (oldest first, as the card numbers them), or
    with 0 to the fit's own label-free ones: a model calibrated by a defectlens that kept no earlier thresholds (0.3.3)
    had no way back to them, though its normal-score statistics hold them (upgrade probe 2026-12-06)."""
    loaded, damaged = None, 0
    try:
        _require_own_thresholds(model_dir)  # (loaded, a zero-shot model had asked for a taxonomy calibrate does not take)
        inspector = Inspector.load(model_dir)
        loaded = model_stamp(model_dir)
        earlier = inspector.earlier_thresholds
        damaged = read_descriptor(model_dir).earlier_thresholds_damaged
        stats = getattr(inspector.detector, "normal_stats", None)
        # A batch-scoring model's own: its fixed outlier level (refused as "no label-free thresholds"; zero-shot probe 2026-12-06).
        fixed = getattr(inspector.detector, "label_free_thresholds", lambda: None)()
        if number == 0:
            if stats is not None:
                chosen = thresholds_from_normal(stats)
            elif isinstance(fixed, Thresholds):
                chosen = fixed
            else:
                raise ConfigError("keeps no normal-score statistics, so no label-free thresholds of its own", model_dir,
                                  "pass --restore N for an earlier threshold on its card (`defectlens info`)")
        elif number > len(earlier):
            said = f" ({damaged} damaged record(s) left out)" if damaged else ""
            raise ConfigError(f"has {len(earlier)} earlier threshold(s){said}, so none numbered {number}", model_dir,
                              "see them with `defectlens info MODEL_DIR` ('Earlier thresholds')" if earlier else
                              "--restore 0 returns to the fit's own label-free thresholds" if stats is not None or fixed is not None else
                              "calibrate it on labelled images: the thresholds a save replaces are kept from then on")
        else:
            chosen = earlier[number - 1]
        old, new = inspector.thresholds, chosen
        if (old.image, old.pixel, old.source) == (new.image, new.pixel, new.source):
            # Nothing to replace: said, and the model left as it is (it had been re-saved, "restored").
            what = "the fit's label-free thresholds are" if number == 0 else f"earlier thresholds no. {number} are"
            console.print(f"{what} the ones in force: {escape(str(model_dir))} is unchanged")
            return
        if not dry_run:
            # Checked once there is something to write (a read-only model whose thresholds are in force is no error).
            require_writable_parent(model_dir, "model", makes_folder=True, fix=READ_ONLY_MODEL_FIX)  # saved whole beside the old
            require_not_mount_point(model_dir, "model", MOUNTED_MODEL_FIX)
            clean_stale_temporaries(model_dir.parent, model_dir.name)
        table = Table(title=f"{model_dir}: thresholds")
        for column in ("", "image threshold", "pixel threshold"):
            table.add_column(column, overflow="fold")
        table.add_row(f"now ({old.source})", f"{old.image:.4f}", f"{old.pixel:.4f}")
        table.add_row(f"the fit's label-free ({new.source})" if number == 0 else f"earlier no. {number} ({new.source})",
                      f"{new.image:.4f}", f"{new.pixel:.4f}")
        console.print(table)
        if dry_run:
            console.print("dry run: the model is unchanged")
            return
        # Restored with the pictures they were calibrated on, when a calibration set them.
        _save_thresholds(inspector, model_dir, loaded, new, inspector.earlier_calibrated_on(number) if number else None)
    except DefectlensError as exc:
        raise fail(exc) from None
    except KeyboardInterrupt:
        saved = not dry_run and model_stamp(model_dir) != loaded
        raise interrupted("the earlier thresholds are restored" if saved else "the model is as it was") from None
    gone = f"; {damaged} damaged record(s) left out of it" if damaged else ""  # said: the save does not write them back
    console.print(f"thresholds restored → {escape(str(model_dir))} (the ones replaced are kept as earlier thresholds{gone})")


def calibrate(
    model_dir: Annotated[Path, typer.Argument(help="Model directory written by `defectlens fit`; its thresholds are replaced.")],
    good: Annotated[list[Path] | None, typer.Option("--good", help="Folder (or image) of good parts; repeat for more.")] = None,
    defective: Annotated[
        list[Path] | None,
        typer.Option("--defective", help="Folder (or image) of defective parts, e.g. CATEGORY/test/crack (masks set the pixel threshold: "
                                  "ground_truth/ in the MVTec layout, else <stem>_mask.* (any image format) beside each image or in masks/)."),
    ] = None,
    max_false_alarms: Annotated[
        float | None,
        typer.Option(
            help=(
                "Target share of good parts flagged, in [0, 1): the image threshold is set just above the highest good score that keeps "
                "false alarms at or below it"
                f" (default: the model's label-free target, the one `fit --false-alarm-target` set: {DEFAULT_FALSE_ALARM_TARGET:g} unless"
                " fitted with another)."
            )
        ),
    ] = None,
    f1: Annotated[bool, typer.Option("--f1", help="Use the F1-optimal thresholds instead of a false-alarm target.")] = False,
    keep_pixel_threshold: Annotated[
        bool,
        typer.Option("--keep-pixel-threshold", help="Set the image threshold only: the pixel threshold, where regions are cut (their sizes, "
                                                    "so their types), stays as it is, masks or not."),
    ] = False,
    plot: Annotated[Path | None, typer.Option(help="ROC plot PNG to write (default: MODEL_DIR.roc.png beside the model folder).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what the new thresholds would do; leave the model as it is.")] = False,
    restore: Annotated[
        int | None,
        typer.Option("--restore", min=0, help="Return to the earlier thresholds numbered N on the model card (`defectlens info`: "
                                              "'Earlier thresholds'), or with 0 to the fit's own label-free ones (from its normal-score "
                                              "statistics), with no images; the present ones are kept there in turn."),
    ] = None,
) -> None:
    """Set a model's image and pixel thresholds from labelled good and defective images, and save it.

    Prints recall and false-alarm rate at the old and the new threshold and writes a ROC plot
    with both marked. Every save keeps the thresholds it replaces on the model card; --restore N
    returns to one. Exit status: 0 done, 3 done but some images were skipped, 2 bad usage, 130 interrupted."""
    # Imported here, not with the CLI: scikit-learn behind them costs every other command 0.6 s of start-up.
    from defectlens.evaluate.metrics import OperatingPoint, verdict_point
    from defectlens.evaluate.roc import PlotUnavailable, roc_figure_png

    if restore is not None:
        if good or defective or f1 or max_false_alarms is not None or plot is not None or keep_pixel_threshold:
            raise fail(ConfigError("--restore returns to earlier thresholds, with no images to score", None,
                                   "pass --restore N alone (with --dry-run to see it first)"))
        _restore(model_dir, restore, dry_run)
        return
    failures: list[Failure] = []
    good, defective = good or [], defective or []
    try:
        # Every option and path is checked before a single image is decoded.
        if not good or not defective:
            raise ConfigError("calibrate compares good and defective parts", model_dir,
                              "pass --good DIR and --defective DIR (or --restore N to return to earlier thresholds)")
        if f1 and max_false_alarms is not None:
            raise ConfigError("--f1 and --max-false-alarms choose the threshold in two different ways", None, "pass one of them")
        # + 0.0: '-0' is 0 (it had been recorded as "false-alarm target -0"; regression probe 2026-12-06).
        target = DEFAULT_FALSE_ALARM_TARGET if max_false_alarms is None else max_false_alarms + 0.0
        if not f1 and not (0.0 <= target < 1.0):
            raise ConfigError(f"--max-false-alarms {target} is outside [0, 1)", None, "pass a share such as 0.01 (1 % of good parts flagged)")
        # A normal-parts folder given as defective moves the threshold to where good parts pass as
        # defects, and is saved into the model: refused, the folder named.
        require_no_good_folder(defective, [])
        _require_own_thresholds(model_dir)
        if not dry_run:
            # The model before its plot: a read-only model folder had been found out on a second try, after the plot's error.
            require_writable_parent(model_dir, "model", makes_folder=True, fix=READ_ONLY_MODEL_FIX)  # saved whole beside the old
            require_not_mount_point(model_dir, "model", MOUNTED_MODEL_FIX)
            clean_stale_temporaries(model_dir.parent, model_dir.name)
            # Saved as a copy swapped in for the old: room for that copy, before the scoring (a full disk had been found out
            # after it; concurrency probe 2026-12-06).
            # One copy: the old model's files are on that disk already (twice their size had refused a disk that could take it;
            # interruption probe 2026-12-06).
            require_room(model_dir.parent, model_copy_room(model_dir), "calibrated model")
        # A model's name of 248 to 255 bytes (fit writes them) had no room for ".roc.png": refused unless --plot (regression probe).
        # Named by the folder it is: `calibrate .` had written `.roc.png` into the model folder itself. Beside the name given, not
        # the folder a link leads to (`current.roc.png` beside `current -> v4`, as the help says; regression probe 2026-12-07).
        named = Path(os.path.abspath(model_dir))
        planned = plot or named.parent / f"{within_bytes(named.name, NAME_MAX - len('.roc.png'))}.roc.png"
        plot_path: Path | None = planned
        try:
            require_output_file(planned, "ROC plot", kept=[model_dir, *good, *defective])
        except OutputError as exc:
            if plot is not None:
                raise
            if dry_run:
                # A dry run writes no model: its plot's default place, unwritable beside a read-only model, is no reason to
                # refuse showing the threshold (interruption probe 2026-12-06).
                console.print(f"[yellow]note:[/] no ROC plot: {escape(exc.message)} beside the model — pass --plot PATH to have one")
                plot_path = None
            else:
                # The default place beside the model cannot be written: the option that moves it, named (concurrency probe
                # 2026-12-06: "pass a folder you can write to" named none).
                raise OutputError(exc.message, exc.path, "pass --plot PATH in a folder you can write to (by default the plot goes beside "
                                  "the model folder)") from None
        inspector = Inspector.load(model_dir)
        loaded = model_stamp(model_dir)
        old = inspector.thresholds
        if max_false_alarms is None:
            # The model's own label-free target, as the option's help says: a model fitted at 0.01 had been calibrated to the
            # fixed 0.03 (README probe 2026-12-06).
            target = inspector.settings.false_alarm_target
        unreadable: list[tuple[Path, str]] = []
        good_files, good_failures = expand_inputs(good, unreadable=unreadable)
        bad_files, bad_failures = expand_inputs(defective, masks_expected=True, unreadable=unreadable)
        # Refused before any scoring, as evaluate refuses it: thresholds set on the rest had been saved, with exit 3.
        require_readable(unreadable, "leave it out of --good and --defective")
        failures += good_failures + bad_failures
        for files, what, folders in ((good_files, "good", good), (bad_files, "defective", defective)):
            if not files:
                raise DatasetLayoutError(
                    f"no {what} images: calibration compares good and defective parts and needs both",
                    ", ".join(map(str, folders)),
                    f"pass a folder holding images of {what} parts with --{what}",
                )
        require_no_good_folder(defective, bad_files)
        require_one_label(good_files, bad_files)
        good_files, bad_files = _distinct_files(inspector, good_files, bad_files)
        min_batch = int(getattr(inspector.detector, "min_batch", 1))
        if len(good_files) + len(bad_files) < min_batch:
            raise ConfigError(
                f"the {inspector.detector.name} detector rates images against each other and got {len(good_files) + len(bad_files)}",
                model_dir,
                f"pass at least {min_batch} good and defective images together",
            )
        # Masks an export of defectlens 0.3.3 or earlier left beside its calibration images are the model's own regions:
        # calibrated on them, the pixel threshold came back unchanged, said as set on masks (upgrade probe 2026-12-06).
        # Found from each image's own place, however its folder was named (a link to it, ".", the files one by one).
        exports = {r.parents[2] for p in bad_files if ((r := p.resolve()).parent.parent.name, r.parent.name) == ("calibration", "defective")}
        machine = {m.resolve() for root in exports for m in exported_machine_masks(root)}
        # Kept on request: the masks are not read (nor the maps kept for them).
        shared: list[str] = []
        found = {} if keep_pixel_threshold else {p: m for p, m in masks_for_images(bad_files, shared, defective).items() if m is not None}
        notes(shared)
        masks = {p: m for p, m in found.items() if m.resolve() not in machine}
        if left_out := len(found) - len(masks):
            console.print(f"[yellow]note:[/] {left_out} mask(s) beside the calibration images are the model's own regions, written by an "
                          "export of defectlens 0.3.3 or earlier: left out (they give the pixel threshold back) — export the reviews again, "
                          "or draw the defects' masks")
        data = LabelledScores([], [], [], [], 0, failures)
        with progress_bar("scoring", len(good_files) + len(bad_files)) as advance:
            _score_files(inspector, {**dict.fromkeys(good_files, 0), **dict.fromkeys(bad_files, 1)}, masks, data, advance)
        labels, scores = np.asarray(data.labels), np.asarray(data.scores)
        for value, what in ((0, "good"), (1, "defective")):
            if not (labels == value).any():
                raise DatasetLayoutError(f"none of the {what} images could be read", None, "fix or replace the files listed above")
        normal, bad = scores[labels == 0], scores[labels == 1]
        # As `inspect` will decide: an image the frame check finds unlike every normal one is
        # flagged at any threshold, so the threshold is chosen with those verdicts fixed.
        unlike = np.asarray(data.unlike, bool)
        unlike_good = int((unlike & (labels == 0)).sum())
        # Of the good images: what the refusal and the false-alarm note say (the defective ones' had been counted as good).
        grey_good, colour_good = (int((np.asarray(flags, bool) & (labels == 0)).sum()) for flags in (data.grey, data.colour))
        # The pixels only where a defective image's mask marks its defect: good images' alone (all normal) set nothing.
        samples = list(zip(data.pixel_labels, data.pixel_values, strict=True)) if data.n_masked else []
        try:
            set_by = thresholds_from_labels(labels, scores, unlike, samples, None if f1 else target, old.pixel)
        except ValueError as exc:
            # Both kinds were read (checked above): what is left is every good image failing the frame check.
            if grey_good or colour_good:
                # Grey images for a model of colour parts (or colour ones for grey parts): the camera, not the model, is to fix
                # (round 3: it said re-fit on them; regression probe 2026-12-07: so it did for colour ones).
                mode = "colour" if grey_good else "grey"
                raise DatasetLayoutError(f"{exc}: {camera_mismatch_words(grey_good, colour_good)}", ", ".join(map(str, good)),
                                         f"set the camera to {mode}, or give {mode} images of the part") from None
            raise DatasetLayoutError(str(exc), ", ".join(map(str, good)),
                                     "check that these are the part this model was fitted for, and re-fit it on images like them") from None
        image_t, pixel_t, how = set_by.thresholds.image, set_by.thresholds.pixel, set_by.thresholds.source
        # Masks found but none usable (the wrong size, empty) are said as such: "no ground-truth masks" had been said above the
        # lines refusing each (messy-masks probe 2026-12-07), and where masks are looked for left out ground_truth/.
        pixel_note = ("kept (the only masks were the model's own regions, left out above)" if left_out else
                      f"kept (none of the {len(masks)} ground-truth mask(s) found could be used: see the inputs skipped)" if masks else
                      f"kept (no ground-truth masks for the defective images: {mask_places_note(bad_files)})")
        if keep_pixel_threshold:
            pixel_note = "kept (--keep-pixel-threshold)"
        elif data.n_masked:
            pixel_note = f"F1-optimal on the pixels of {data.n_masked} masked defective and {len(normal)} good image(s)"
        if pixel_t > image_t:
            # Kept (F1-optimal pixels make tighter regions), and said: a part just over the image threshold
            # may have no pixel over this one, and is then outlined where it passes the image threshold.
            pixel_note += ("; it is above the new image threshold, so a part flagged with no pixel above it is outlined where "
                           "its map passes the image threshold")
    except DefectlensError as exc:
        report_failures(failures)
        raise fail(exc) from None
    except KeyboardInterrupt:
        raise interrupted("the model is as it was") from None
    before, after = (verdict_point(t, labels, (scores > t) | unlike) for t in (old.image, image_t))
    table = Table(title=f"{model_dir}: {len(normal)} good, {len(bad)} defective image(s)")
    for column in ("", "image threshold", "recall", "false alarms", "pixel threshold"):
        table.add_column(column, overflow="fold")  # "(normal-quantile)" whole, not cut with "…"
    table.add_row(f"old ({old.source})", f"{old.image:.4f}", percent(before.recall), percent(before.false_alarm_rate), f"{old.pixel:.4f}")
    table.add_row(f"new ({how})", f"{image_t:.4f}", percent(after.recall), percent(after.false_alarm_rate), f"{pixel_t:.4f}")
    console.print(table)
    console.print(f"pixel threshold: {escape(str(pixel_note))}")
    if data.n_masked and abs(pixel_t - old.pixel) > PIXEL_SHIFT_NOTED * abs(old.pixel):
        # Regions are cut at it: on cookie, the new one (59.69 against 63.92) made regions twice as large and the examples'
        # types fell from 1.000 to 0.654, unsaid (first-week probe 2026-12-07).
        console.print(f"[yellow]note:[/] the pixel threshold moves from {old.pixel:.4f} to {pixel_t:.4f}: regions are cut at it, so their "
                      "sizes and the types given to them change too — check the types with `defectlens evaluate MODEL DATA --types-k K` "
                      "(or --examples) before the line uses it, or keep the pixel threshold with --keep-pixel-threshold")
    if unlike.any():
        grey = f"; {words}" if (words := camera_mismatch_words(sum(data.grey), sum(data.colour))) else ""
        console.print(f"[yellow]note:[/] {unlike_good} good and {int(unlike[labels == 1].sum())} defective image(s) are "
                      f"unlike every normal one (frame check{grey}): flagged at any threshold, and counted so above")
    if not f1 and unlike_good > allowed_false_alarms(len(normal), target):
        why = (" (grey images for a model of colour parts among them: is the camera set to colour?)" if grey_good else
               " (colour images for a model of grey parts among them: is the camera set to grey?)" if colour_good else "")
        console.print(f"[yellow]note:[/] images unlike every normal one alone flag {unlike_good} of {len(normal)} good image(s){why}, more "
                      f"than the false-alarm target {target:g} allows: the new threshold flags no other good image")
    if data.other_view:
        # Said as `inspect` says it of one image (regression probe 2026-12-06: a crop in the set went without a word).
        console.print(f"[yellow]note:[/] {len(data.other_view)} image(s) show the part in another view than the training images (e.g. "
                      f"{escape(data.other_view[0])}): a threshold set on their scores may not hold for the line's images — "
                      "calibrate on images taken as the line takes them")
    if thin := set_by.thin:
        console.print(f"[yellow]note:[/] {thin}: check it with `defectlens evaluate`, or calibrate on more (--dry-run shows a threshold "
                      "without saving it)")
    notes(threshold_shift_notes(labels, scores, unlike, old.image, image_t, None if f1 else "--f1 trades false alarms for recall"))
    if getattr(inspector.detector, "batch_relative", False):
        console.print(f"[yellow]note:[/] this model's scores are relative to the batch they were read in: the threshold holds for "
                      f"batches mixed like this set ({len(bad) / len(labels):.0%} defective), not for lots of another mix")
    report_failures(data.failures)
    if set_by.looks_swapped:
        # Saved, the model had passed 3 of 5 real cracks, the AUROC of 0.00 shown only in the plot's legend (threshold probe).
        said = f"the defective images score lower than the good ones (image AUROC {set_by.separation:.2f} on this set)"
        if not dry_run:
            raise fail(ConfigError(f"{said}: nothing saved", model_dir, "check that --good and --defective are not swapped; if they "
                                   "are right, the model cannot tell these defects (refit it on more normal images); --dry-run shows "
                                   "the thresholds anyway"))
        console.print(f"[yellow]note:[/] {said}: are --good and --defective swapped?")
    points: dict[str, OperatingPoint] = {"old": before, "new": after}
    saved = False
    try:
        # The model first, then the plot of its thresholds: a run stopped between the two leaves a
        # plot of the old thresholds or none, never one of thresholds the model does not hold.
        if dry_run:
            console.print("dry run: the model is unchanged")
        else:
            try:
                _save_thresholds(inspector, model_dir, loaded, Thresholds(image=image_t, pixel=pixel_t, source=how), data.digests)
            except OSError as exc:
                # The model's own failure, not the plot's (a full disk had been told "ROC plot could not be written").
                raise OutputError(f"the model could not be saved ({exc.strerror or exc}); it is as it was", getattr(exc, "filename", None)
                                  or model_dir, "free space or fix the permissions of the model folder's parent, and run calibrate again") from None
            saved = True
            console.print(f"thresholds saved → {escape(str(model_dir))}")
        # Links and streams followed for a --plot the user named only, not for the name made up beside the model.
        if plot_path is not None:
            write_bytes_atomic(plot_path, roc_figure_png(labels, scores, points, f"{model_dir.name}: image thresholds"), named=plot is not None)
            console.print(f"ROC plot → {escape(str(plot_path))}")
    except DefectlensError as exc:
        raise fail(exc) from None
    except PlotUnavailable as exc:
        if plot is not None:  # asked for: its absence is the run's failure
            console.print(f"[red]error:[/] {escape(str(plot_path))}: not drawn ({exc.strerror}){'; the thresholds are saved' if saved else ''}"
                          f" — fix: {exc.fix}")
            raise typer.Exit(2) from None
        # The plot made up beside the model is an extra: on a host that cannot draw, calibrate had always ended with status 2,
        # after the thresholds were saved (regression probe 2026-12-07).
        console.print(f"[yellow]warning:[/] no ROC plot ({exc.strerror}) — fix: {exc.fix}")
    except OSError as exc:
        console.print(f"[red]error:[/] {escape(str(plot_path))}: could not be written ({escape(str(exc.strerror or exc))})"
                      f"{'; the thresholds are saved' if saved else ''} — fix: pass --plot with a writable path")
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        # Saved also when the interrupt came in the moment after the model folder was swapped in.
        saved = saved or (not dry_run and model_stamp(model_dir) != loaded)
        raise interrupted("the thresholds are saved, the ROC plot not written" if saved else "the model is as it was") from None
    if data.failures:
        raise typer.Exit(EXIT_PARTIAL)


__all__ = ["calibrate"]
