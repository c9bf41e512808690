"""Reading categories stored in the MVTec-AD folder layout (or a test split from labelled folders:
:func:`labelled_category`).

    <category>/train/good/*            normal images to fit on
    <category>/test/good/*             normal test images
    <category>/test/<defect>/*         defective test images, one folder per type
    <category>/ground_truth/<defect>/<stem>_mask.png
    <category>/taxonomy.json           optional: object name, defect names and descriptions
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import stat
import warnings
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from defectlens.errors import DatasetLayoutError, DefectlensError, collected_warnings, shortage_caught
from defectlens.io.atomic import folder_identity
from defectlens.io.images import IMAGE_SUFFIXES, OTHER_IMAGE_SUFFIXES, image_digest, load_image, load_mask, path_is
from defectlens.io.names import folded_name, names_by_fold, word_folded

GOOD = "good"
MASKS_FOLDER = "masks"
"""A folder beside images that holds their masks (``masks/<stem>[_mask].png``)."""

NamedFile = TypeVar("NamedFile", str, Path, str | Path)
"""A file's name as given: a string or a path."""


def is_good_folder(folder: Path) -> bool:
    """Whether ``folder`` is named for normal parts: ``good``, whatever its case (``Good``, ``GOOD``) and in
    full-width letters (``ＧＯＯＤ``, as Japanese input methods type it: its normal parts had been counted as defects)."""
    return word_folded(folder.name) == GOOD


def list_images(folder: str | Path) -> list[Path]:
    """Sorted image files directly inside ``folder`` (hidden files skipped)."""
    root = Path(folder)
    if not root.is_dir():
        raise DatasetLayoutError("not a folder", root, "pass a folder of images")
    return sorted(
        p for p in root.iterdir() if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
    )


@dataclass(frozen=True)
class LabelledImage:
    """A test image with its ground truth."""

    path: Path
    defect_type: str
    """'good' for normal images, else the defect folder's name."""
    mask_path: Path | None

    @property
    def is_defective(self) -> bool:
        """True for any image outside ``test/good``."""
        return self.defect_type != GOOD


@dataclass
class Category:
    """One category folder: its normal training images and labelled test images."""

    root: Path
    train_good: list[Path] = field(default_factory=list)
    test: list[LabelledImage] = field(default_factory=list)
    taxonomy_path: Path | None = None
    notes: list[str] = field(default_factory=list)
    """What reading the folder found that a person should know (images in subfolders, masks
    beside their images, masks that match two images), one line each."""
    unreadable_folders: list[tuple[Path, str]] = field(default_factory=list)
    """Folders of the category that could not be listed (``(folder, why)``): a split that holds one is refused by the call
    that asks for it (:meth:`require_train_good`, :meth:`require_test`), never read as holding fewer images — and a split
    not asked for does not stop the others (`fit` reads only train/good)."""

    def _require_readable(self, *splits: str) -> None:
        """Refuse, naming the folder, when one in any of the top-level folders ``splits`` ("train", "test", "ground_truth",
        in any case; none: all) could not be listed (locked-down host probe 2026-12-07: `evaluate` had reported on a test
        set without a whole defect type's folder, or without its masks, exit 0)."""
        wanted = {folded_name(s) for s in splits}

        def in_split(folder: Path) -> bool:
            parts = folder.relative_to(self.root).parts if folder.is_relative_to(self.root) else ()
            return not wanted or (bool(parts) and folded_name(parts[0]) in wanted)

        require_readable([(p, why) for p, why in self.unreadable_folders if in_split(p)], "move it out of the dataset")

    def require_all_readable(self) -> None:
        """Refuse, naming it, a folder of the category that could not be listed, whichever split it is in (a reader of every
        split: the grounding model's training data had taken test/good's images for an unreadable train/good's)."""
        self._require_readable()

    def __repr__(self) -> str:
        # Every path listed ran to 41 kB for commutator.
        counts = ", ".join(f"{t} {sum(x.defect_type == t for x in self.test)}" for t in sorted({x.defect_type for x in self.test}))
        return f"Category({str(self.root)!r}: {len(self.train_good)} training images; test: {counts or 'none'})"

    @property
    def name(self) -> str:
        """Folder name of the category (``.`` and ``..`` named as the folders they stand for); ``test`` where the folder is the file system's
        root (folders given to `evaluate --good / --defective` with nothing above them in common), whose empty name had titled
        the tables and named a figure ``.confusion.png`` (metrics probe 2026-12-07)."""
        return (self.root.name if self.root.name not in ("", ".", "..") else Path(os.path.realpath(self.root)).name) or "test"

    @property
    def defect_types(self) -> list[str]:
        """Sorted defect folder names present in the test split."""
        return sorted({t.defect_type for t in self.test if t.is_defective})

    def require_train_good(self) -> list[Path]:
        """Normal training images, or a clear error when there are none (or a folder of them cannot be read)."""
        self._require_readable("train")
        if not self.train_good:
            read = folder_any_case(self.root, "train", GOOD)
            fix = "put normal images of the part in it, or, with none, fit with --detector batch-scoring"
            # A full-width "ＧＯＯＤ" beside: named, not passed over in silence (layout probe 2026-12-06). Any case is read
            # as it is ("Train/Good"), so only such a folder is left to name.
            near = [d for d in (self.root.iterdir() if path_is(self.root, "dir") else ())
                    if d.is_dir() and word_folded(d.name) == "train"]
            near = [g for d in near for g in d.iterdir() if g.is_dir() and is_good_folder(g) and g != read and any(g.iterdir())]
            if near and folded_name(near[0].name) == folded_name(read.name) and read.is_dir():
                fix = f"merge {near[0].relative_to(self.root)} into {read.relative_to(self.root)} (the two spellings are one folder's)"
            elif near:
                fix = f"rename {near[0].relative_to(self.root)} to train/good (full-width letters are not read as the folder's name)"
            raise DatasetLayoutError(f"no normal training images in {read.relative_to(self.root)}", read, fix)
        return self.train_good

    def require_test(self) -> list[LabelledImage]:
        """Labelled test images, or a clear error when there are none (or a folder of them or of their masks cannot be read)."""
        self._require_readable("test", GROUND_TRUTH)
        if not self.test:
            raise DatasetLayoutError(
                "no test images in test/<type>/", self.root / "test", "add test/good and test/<defect> folders"
            )
        return self.test


MASK_SUFFIX = "_mask"
"""A file named ``<stem>_mask.<ext>`` is the mask of ``<stem>``, never an image of its own."""


def is_mask_file(path: Path) -> bool:
    """Whether ``path`` is named as a mask (``<stem>_mask.<ext>``, whatever the case: ``D_MASK.PNG`` had been
    counted as a defective part of its own)."""
    return path.stem.casefold().endswith(MASK_SUFFIX)


def _named_in(folder: Path, stem: str, image: Path) -> Path | None:
    """The file in ``folder`` named ``<stem>.<an image suffix>``, whatever the case of either (``.png`` first) —
    but not one whose name is, to the letter, that of another image beside ``image`` (``a_mask.png`` is ``a.png``'s,
    not ``A.png``'s: handed to both, it had been used for neither)."""
    suffixes = (".png", *sorted(IMAGE_SUFFIXES - {".png"}))
    index, beside = names_by_fold(folder), names_by_fold(image.parent)
    for suffix in suffixes:
        for name in index.get(folded_name(stem + suffix), []):
            owner = Path(name).stem[: -len(MASK_SUFFIX)] if stem.casefold().endswith(MASK_SUFFIX) else Path(name).stem
            taken = owner != image.stem and any(Path(n).stem == owner for s in suffixes for n in beside.get(folded_name(owner + s), []))
            if not taken and path_is(folder / name, "file"):
                return folder / name
    return None


@dataclass(frozen=True)
class FolderImages:
    """What a folder holds below it, walked into its subfolders (see :func:`images_below`)."""

    images: list[Path]
    """Image files (and links to them, dangling ones included, so the loader names them), sorted by
    their path below the folder."""
    masks: list[Path] = field(default_factory=list)
    """``<stem>_mask.<ext>`` files and the files of a ``masks/`` folder: the masks of images, never parts of their own."""
    other_formats: list[Path] = field(default_factory=list)
    """Images in formats defectlens does not decode (``OTHER_IMAGE_SUFFIXES``)."""
    repeated_folders: list[Path] = field(default_factory=list)
    """Linked folders leading to a folder already walked (a loop, or a second link to the same
    images): not walked again, so no image is read twice."""
    unreadable_folders: list[tuple[Path, str]] = field(default_factory=list)
    """Folders that could not be listed (``(folder, why)``: "permission denied"): their images are unknown, never silently
    none (a probe's `evaluate` had reported on a test set missing a whole defect type's folder, exit 0)."""


def require_readable(unreadable: Sequence[tuple[Path, str]], instead: str) -> None:
    """Refuse folders that could not be listed (``(folder, why)``, as :attr:`FolderImages.unreadable_folders` has them), naming
    the first and counting the rest, before any image is scored; ``instead``: the other way out of the fix ("move it out of
    the dataset")."""
    if unreadable:
        where, why = unreadable[0]
        more = f"; {len(unreadable) - 1} more" if len(unreadable) > 1 else ""
        raise DatasetLayoutError(f"folder cannot be read ({why}){more}", where, reading_fix(why, instead))


def reading_fix(why: str, instead: str | None = None) -> str:
    """The fix for a folder not read for ``why`` (:attr:`FolderImages.unreadable_folders`): permissions only where they closed
    it (one too deep, :data:`MAX_FOLDER_DEPTH`, had been told to chmod), else ``instead`` or moving its images up."""
    # Too deep first: its reason names the folder walked, whose path may hold "denied" (regression probe 2026-12-07: chmod said).
    if why.startswith(TOO_DEEP):
        return instead or "move its images to a folder less deep"
    if "denied" in why or "permission" in why:
        return "give this user read and enter permission on it (chmod a+rx)" + (f", or {instead}" if instead else "")
    return instead or "check the folder and the disk it is on, then run again"


LOST_AND_FOUND = "lost+found"
"""The folder an ext file system keeps at the top of a volume for what its check recovers (root's, mode 700)."""


def closed_lost_and_found(folder: Path) -> bool:
    """Whether ``folder`` is a file system's own ``lost+found`` that this user cannot read — root's, as the file system makes
    it —: passed over without a word, as no folder of the user's images (a folder of good parts on a volume of its own had
    been refused for it; regression probe 2026-12-07). One the user can read, their own or another user's is a folder like
    any other (skipped by its name, or when closed by its owner, a user's images in it had gone unsaid; one of another
    user's, too: regression probe 2026-12-07)."""
    if folder.name != LOST_AND_FOUND or folder.is_symlink() or os.access(folder, os.R_OK | os.X_OK):
        return False
    try:
        return (owner := os.lstat(folder).st_uid) == 0 and owner != os.getuid()
    except OSError:
        return False


MAX_FOLDER_DEPTH = 64
"""Folders below a folder that :func:`images_below` walks into; deeper ones are listed as not read."""
TOO_DEEP = f"more than {MAX_FOLDER_DEPTH} folders below"
"""How :func:`images_below` says why a folder too deep was not read (the start of its reason; :func:`reading_fix` reads it)."""


def images_below(folder: str | Path) -> FolderImages:
    """The images in ``folder`` and its subfolders, hidden files and folders skipped.

    Linked folders are followed (plants link a day's folder into a dataset), each real folder
    once: a link loop ends instead of recursing without end. Paths stay below ``folder`` as
    given, so names shown to the user read as the user laid them out."""
    root = Path(folder)
    found = FolderImages([])
    walked: set[str] = set()

    def unlisted(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else root
        if where == root or not closed_lost_and_found(where):
            found.unreadable_folders.append((where, (exc.strerror or str(exc)).lower()))

    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=unlisted):
        here = Path(dirpath)
        if not os.access(dirpath, os.R_OK | os.X_OK):
            # Listed, but not entered (mode 644): its files cannot be read either, and had been "skipped" one by one, a defect
            # type's folder then evaluated as holding none, exit 3 (regression probe 2026-12-07).
            if here == root or not closed_lost_and_found(here):
                found.unreadable_folders.append((here, "permission denied"))
            dirnames.clear()
            continue
        if len(here.relative_to(root).parts) > MAX_FOLDER_DEPTH:
            # Not walked deeper (os.walk recurses: a tree 1100 folders deep had ended `fit` and `inspect` in a RecursionError
            # traceback; regression probe 2026-12-07): said as a folder not read, as one that cannot be listed.
            found.unreadable_folders.append((here, f"{TOO_DEEP} {root}"))
            dirnames.clear()
            continue
        real = os.path.realpath(dirpath)
        if real in walked:
            found.repeated_folders.append(here)
            dirnames.clear()
            continue
        walked.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            path, suffix = here / name, Path(name).suffix.lower()
            if suffix in IMAGE_SUFFIXES:
                # A masks/ folder below the one given holds masks (mask_for_image reads masks/<stem>.png): its files
                # had been counted as defective parts beside their own images (regression probe 2026-12-05).
                # A masks/ folder at any depth below (masks/lot1/ mirroring the lots' folders): its files had been scored as parts
                # (regression probes 2026-12-07). The readers say how many they set apart (noted_images_below, inspect_batch).
                in_masks = any(part.lower() == MASKS_FOLDER for part in here.relative_to(root).parts)
                (found.masks if in_masks or is_mask_file(path) else found.images).append(path)
            elif suffix in OTHER_IMAGE_SUFFIXES:
                found.other_formats.append(path)
    for listing in (found.images, found.masks, found.other_formats):
        listing.sort(key=lambda p: p.relative_to(root).parts)
    found.unreadable_folders.sort()
    return found


def _mask_or_none(image: Path, folder: Path) -> Path | None:
    """:func:`mask_for_image`, None where its folder cannot be read (said where the mask is read, not in a listing's note)."""
    try:
        return mask_for_image(image, folder)
    except DatasetLayoutError:
        return None


def noted_images_below(folder: Path, notes: list[str], unreadable: list[tuple[Path, str]]) -> list[Path]:
    """A dataset split's images below ``folder`` (masks left out), what was not read noted: a
    line's images filed by date (``train/good/2024-05/``) are read, not silently dropped while
    ``inspect`` reads the same folders whole. Folders that could not be listed go to ``unreadable``
    (:attr:`Category.unreadable_folders`)."""
    found = images_below(folder)
    unreadable.extend(found.unreadable_folders)
    nested = sum(1 for p in found.images if p.parent != folder)
    if nested:
        notes.append(f"{folder}: {nested} of its {len(found.images)} images are in subfolders; all are read")
    kept_apart = [p for p in found.masks if MASKS_FOLDER in [part.lower() for part in p.relative_to(folder).parts[:-1]]]
    if kept_apart:
        # The masks of images found beside them are what the layout asks for: an examples folder's type/masks/ had been warned of
        # at every `serve` (upgrade probe 2026-12-07). Others said.
        taken = {os.path.realpath(m) for image in found.images if (m := _mask_or_none(image, folder)) is not None}
        kept_apart = [p for p in kept_apart if os.path.realpath(p) not in taken]
    if kept_apart:
        # Said: a camera's folder named masks/ had been passed over by `fit` without a word (regression probe 2026-12-07).
        # As left out, not as used: "taken as masks" had read as used (regression probe 2026-12-07).
        notes.append(f"{folder}: {len(kept_apart)} file(s) in masks/ folders (e.g. {kept_apart[0]}) are left out: files there are "
                     "masks, not images, and no image here takes them (an image's mask is masks/<its name>_mask.png or masks/<its name>.png)")
    if found.other_formats:
        notes.append(f"{folder}: {len(found.other_formats)} image(s) in formats not read "
                     f"(e.g. {found.other_formats[0].name}): convert them to PNG or JPEG to use them")
    for again in found.repeated_folders:
        notes.append(f"{again}: links to a folder already read; its images are read once")
    return found.images


def unreadable_folder(folder: Path, need: int = os.R_OK | os.X_OK) -> str | None:
    """Why this user cannot list and enter the folder ``folder`` ("permission denied"), or None where it can, or where there is
    no folder there: a folder it may list but not enter (mode 644) had passed a listing's check, its masks then all "none".
    ``need``: ``os.X_OK`` alone for a folder whose files are looked up by name only (masks), which needs no listing."""
    try:
        state = os.stat(folder)
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    if stat.S_ISDIR(state.st_mode) and not os.access(folder, need):
        return "permission denied"
    return None


def mask_in(folder: Path, image: Path) -> Path | None:
    """The mask of ``image`` kept in ``folder`` (``<stem>_mask.png``, or ``<stem>.png``), else
    ``<stem>_mask.png`` beside the image itself; None when there is none. Not ``<stem>.png``
    beside it: that is another image of the same name (``a.jpg`` took the photo ``a.png`` as its
    mask). The one rule for MVTec's ``ground_truth/<type>/`` and an examples folder's ``masks/``.

    A mask may be in any image format and its name in any case (``000_mask.bmp``, ``002_MASK.PNG``;
    PNG first where there are several): others had been passed over, and the image said to have none."""
    if (why := unreadable_folder(folder, os.X_OK)) is not None:
        # Refused, not read as "no mask" (a folder it may enter but not list is searched by the masks' names): `calibrate
        # --defective` had kept the old pixel threshold "for want of masks", and `evaluate --good/--defective` had null pixel
        # metrics, exit 0 (regression probe 2026-12-07).
        raise DatasetLayoutError(f"the masks' folder cannot be read ({why})", folder,
                                 "give this user read and enter permission on it (chmod a+rx)")
    # Each name exactly as PNG first (a folder of thousands is not listed for it), then in any format and case.
    # A long stem's mask name can pass 255 bytes: none there (it had raised a traceback).
    for where, stem in ((folder, image.stem + MASK_SUFFIX), (folder, image.stem), (image.parent, image.stem + MASK_SUFFIX)):
        if path_is(where / f"{stem}.png", "file"):
            return where / f"{stem}.png"
        if (found := _named_in(where, stem, image)) is not None:
            return found
    return None


GROUND_TRUTH = "ground_truth"


def folder_any_case(parent: Path, *names: str) -> Path:
    """``parent / names…``, each folder the one of that name, or of that name in another case or Unicode form (``Ground_Truth``,
    ``MASKS``, ``Train/Good`` copied from Windows: their masks and images had been passed over, said only as none found;
    Windows-inputs probe 2026-12-06); the exact path where there is neither."""
    folder = parent
    for name in names:
        exact = folder / name
        if not path_is(exact, "dir"):
            exact = next((folder / found for found in names_by_fold(folder).get(folded_name(name), []) if path_is(folder / found, "dir")),
                         exact)
        folder = exact
    return folder


def other_case_folders(parent: Path, read: Path) -> list[Path]:
    """Folders in ``parent`` named as ``read`` is but in another case or Unicode form, which :func:`folder_any_case` passed
    over for it (``Train/Good`` beside ``train/good``: its images had been left out without a word; regression probe
    2026-12-06)."""
    return [parent / n for n in names_by_fold(parent).get(folded_name(read.name), []) if parent / n != read and path_is(parent / n, "dir")]


def _ground_truth_folder(root: Path, type_folder: str) -> Path:
    """``<root>/ground_truth/<type>``, each folder matched whatever its case and Unicode form (``Crack`` for
    ``test/crack``: its masks had been passed over without a word)."""
    return folder_any_case(root, GROUND_TRUTH, type_folder)


def _mask_below(type_masks: Path | None, type_dir: Path, image: Path) -> Path | None:
    """The mask of ``image``, read from the folder ``type_dir`` (a defect type's, or a folder given) or a subfolder of it, with
    the type's masks' folder ``type_masks`` (``ground_truth/<type>``; None: there is none). An image right in ``type_dir``: in
    ``type_masks``, then in ``masks/`` beside it, then beside it. An image in a subfolder (a lot: ``test/crack/lot1/``): in the
    subfolder of ``type_masks`` named as its own (``ground_truth/crack/lot1/``), then in its own ``masks/`` or beside it, then
    in the lot's folder of a ``masks/`` above it (``crack/masks/lot1/``, nearest first), and only then by its name alone — in
    ``type_masks``, then in the ``masks/`` of a folder above it, nearest first — where no image right in that folder has its
    name, whose it would be. The one rule of a dataset, of labelled folders (`calibrate`, `evaluate --good/--defective`) and
    of an examples folder (regression probes 2026-12-07 and 2026-12-08: each had read a part of it, and images filed by lot had
    lost their masks, or taken another image's of their name); any image format and case (:func:`mask_in`), each folder in
    any case, every spelling of ``masks/`` read (:func:`_in_masks_folders`)."""
    nested = image.parent.relative_to(type_dir).parts
    if not nested:
        return (mask_in(type_masks, image) if type_masks is not None else None) or _in_masks_folders(image.parent, image)
    if type_masks is not None and path_is(mirrored := folder_any_case(type_masks, *nested), "dir") and (found := mask_in(mirrored, image)):
        return found
    if (found := _in_masks_folders(image.parent, image)) is not None:
        return found
    above = [(type_dir.joinpath(*nested[:depth]), nested[depth:]) for depth in range(len(nested) - 1, -1, -1)]  # nearest first
    for holder, lot in above:
        if (found := _in_masks_folders(holder, image, *lot)) is not None:
            return found
    if type_masks is not None and not _named_at_top(type_dir, image) and (found := mask_in(type_masks, image)):
        return found
    for holder, _ in above:
        if not _named_at_top(holder, image) and (found := _in_masks_folders(holder, image)) is not None:
            return found
    return None


def _in_masks_folders(holder: Path, image: Path, *lot: str) -> Path | None:
    """The mask of ``image`` in a ``masks/`` folder of ``holder`` — in its subfolder ``lot`` where given (each folder in any
    case) —, or, with no ``lot``, beside the image (:func:`mask_in`). Every spelling of ``masks/`` there is read: of
    ``masks/`` and ``MASKS/`` side by side, one had been passed over while its files were said to be taken as masks
    (regression probe 2026-12-08)."""
    for name in names_by_fold(holder).get(folded_name(MASKS_FOLDER)) or [MASKS_FOLDER]:
        folder = folder_any_case(holder / name, *lot)
        if lot and not path_is(folder, "dir"):
            continue
        if (found := mask_in(folder, image)) is not None:
            return found
    return None


def _named_at_top(folder: Path, image: Path) -> bool:
    """Whether an image right in ``folder`` has ``image``'s name (in any image format and case): a mask found there by the name
    alone is that image's."""
    index = names_by_fold(folder)
    return any(folded_name(image.stem + suffix) in index for suffix in IMAGE_SUFFIXES)


def _mask_or_unreadable(type_masks: Path, type_dir: Path, image: Path, unreadable: list[tuple[Path, str]]) -> Path | None:
    """:func:`_mask_below`, or None with the masks' folder it cannot read added to ``unreadable``: refused there, a lot's
    ``masks/`` closed to this user had stopped `fit`, which reads no masks (regression probe 2026-12-08); the commands that
    read them refuse it."""
    try:
        return _mask_below(type_masks, type_dir, image)
    except DatasetLayoutError as exc:
        closed = Path(exc.path or type_dir)
        if all(folder != closed for folder, _ in unreadable):
            unreadable.append((closed, unreadable_folder(closed, os.X_OK) or "cannot be read"))
        return None


LABELLED_SPLITS = ("test", "validation")
"""Split folders whose images are labelled by type folder, with masks in ``ground_truth/``."""


def mask_for_image(image: str | Path, given_in: str | Path | None = None) -> Path | None:
    """The ground-truth mask of a defective image, wherever it is kept; None when there is none. ``given_in``: the folder the
    image was found in (``--defective FOLDER``), whose subfolders are lots (:func:`_mask_below`).

    In the MVTec layout (``<category>/test/<type>/<name>``, or a ``validation/`` split beside
    ``test/``, which shares its masks; the image in a subfolder of ``<type>`` too, as a dataset's are read)
    ``<category>/ground_truth/<type>/<stem>_mask.png`` (:func:`_mask_below`); in any
    folder (and where ground_truth/ has none) ``masks/<stem>_mask.png`` (or ``masks/<stem>.png``) in
    the image's folder, else ``<stem>_mask.png`` beside the image. The one rule of `calibrate` and of
    an examples folder: masks beside images in a folder not named test/ had been left out of
    `calibrate`, which then said there were none."""
    # Found from the path made absolute: "crack/000.png" given inside test/ had lost its ground_truth/ masks. Joined, not
    # normalised: a ".." after a link is the link's target's parent, as the system reads it (regression probe 2026-12-07).
    cwd = Path.cwd()
    path = cwd / image
    found = _dataset_or_folder_mask(path, None if given_in is None else cwd / given_in)
    if found is None and (real := Path(os.path.realpath(path.parent)) / path.name) != path:
        # Through a link to a dataset's type folder (a line's folder linked into the dataset, or the other way): its
        # ground_truth/ is beside the folder linked to, which the path as given does not show (regression probe 2026-12-07).
        found = _dataset_or_folder_mask(real, None)
    # Named as the image was: relative to the working folder for an image given so (messages and JSON had turned absolute).
    if found is None or Path(image).is_absolute():
        return found
    return found.relative_to(cwd) if found.is_relative_to(cwd) else Path(os.path.relpath(found, cwd))


def _dataset_or_folder_mask(path: Path, given_in: Path | None) -> Path | None:
    """:func:`mask_for_image` of the absolute ``path``, as its folders are named; out of a dataset, read as found in the folder
    ``given_in`` where it is below it."""
    if folded_name(path.parent.parent.name) in LABELLED_SPLITS:
        type_dir: Path | None = path.parent
    else:
        # An image in a subfolder of a type (``test/crack/lot1/a.png``, as a dataset's images are read), where that split has
        # a ground_truth/ to read: a folder named test far above an unrelated one is no dataset (regression probe 2026-12-07:
        # a closed ground_truth/ beside it had stopped calibrate).
        type_dir = next((d for d in path.parents if folded_name(d.parent.name) in LABELLED_SPLITS), None)
        if type_dir is not None and not (path_is(gt := folder_any_case(type_dir.parent.parent, GROUND_TRUTH), "dir")
                                         and unreadable_folder(gt, os.X_OK) is None):
            type_dir = None
    if type_dir is None or is_good_folder(type_dir):
        return _mask_below(None, given_in if given_in is not None and path.parent.is_relative_to(given_in) else path.parent, path)
    return _mask_below(_ground_truth_folder(type_dir.parent.parent, type_dir.name), type_dir, path)


MASK_PLACES = ("ground_truth/<type>/<name>_mask.* (or <name>.*) beside test/ in a dataset, else masks/<name>_mask.* or <name>_mask.* "
               "beside the image, or for an image in a lot's subfolder masks/<lot>/<name>_mask.* in a folder above it")
"""Where a defective image's mask is looked for (:func:`mask_for_image`), as messages say it."""
_GROUND_TRUTH_LOOKALIKES = frozenset({"groundtruth", "ground-truth", "ground truth", "gt", "mask", "masks", "label", "labels", "annotations"})


def _contents(folder: Path) -> list[Path]:
    """What ``folder`` holds; nothing where it is none or cannot be listed."""
    try:
        return list(folder.iterdir())
    except OSError:
        return []


def mask_places_note(images: Sequence[Path]) -> str:
    """Where the masks of ``images`` were looked for (:data:`MASK_PLACES`), and any folder beside their dataset's test/ named
    like its ground_truth/ (a contractor's ``groundtruth/``, ``masks/``): the masks there had been unfound with nothing said of
    where they were looked for (messy-masks probe 2026-12-07)."""
    real = [Path(os.path.realpath(p)) for p in images]
    roots = {p.parents[2] for p in real if len(p.parents) > 2 and folded_name(p.parents[1].name) in LABELLED_SPLITS}
    # Only where the dataset has no ground_truth/ of its own, or an empty one (regression probes 2026-12-07: a labels/ folder of CSV
    # files beside it had been told to be renamed so), and each folder that holds folders or images, as a ground_truth/ does.
    lookalikes = sorted(folder for root in roots if root.is_dir() and not _contents(root / GROUND_TRUTH)
                        for folder in _contents(root) if folder.is_dir() and folded_name(folder.name) in _GROUND_TRUTH_LOOKALIKES
                        and any(d.is_dir() or d.suffix.lower() in IMAGE_SUFFIXES for d in _contents(folder)))
    said = f"masks are looked for as {MASK_PLACES}"
    if len(lookalikes) > 1:
        return f"{said}; {' and '.join(map(str, lookalikes))} are no such folder: rename the one holding the masks {GROUND_TRUTH}"
    if lookalikes:
        # Its masks in type folders, as ground_truth/ keeps them, or flat (then in a type folder of ground_truth/).
        typed = any(d.is_dir() for d in _contents(lookalikes[0]))
        return f"{said}; {lookalikes[0]} is no such folder: " + (f"rename it {GROUND_TRUTH}" if typed else f"put its masks in {GROUND_TRUTH}/<type>/")
    return said


def masks_for_images(images: Sequence[Path], notes: list[str], given_in: Sequence[Path] = ()) -> dict[Path, Path | None]:
    """Each image's :func:`mask_for_image` as found in the outermost of the folders ``given_in`` that holds it, none where two
    images would take one mask (said in ``notes``): images of one name in two subfolders of a type had both been given the one
    ``ground_truth/`` mask (regression probe 2026-12-07), where a dataset read by `evaluate CATEGORY` gives it to neither."""
    cwd = Path.cwd()
    folders = sorted((f for f in given_in if path_is(f, "dir")), key=lambda f: len((cwd / f).parts))
    masks = {Path(p): mask_for_image(p, next((f for f in folders if (cwd / p).is_relative_to(cwd / f)), None)) for p in images}
    drop_shared_masks(masks, notes)
    return masks


REVIEW_EXPORT_MANIFEST = "manifest.json"
"""The file `export-reviews` writes last in its folder: what came from which inspection."""


def is_train_good(folder: Path) -> bool:
    """Whether ``folder`` is a dataset's ``train/good`` (in any case), however it was named (``good`` from inside ``train/``,
    ``.`` from inside it: regression probe 2026-12-07, one folder had been fitted on 8 or 12 images by how it was named)."""
    # As named, or where a link to it leads (regression probe 2026-12-07: a link to train/good had fitted 10 of its 14 images).
    return any(word_folded(where.parent.name) == "train" and is_good_folder(where)
               for where in (Path(os.path.abspath(folder)), Path(os.path.realpath(folder))))


@dataclass(frozen=True)
class NormalFolder:
    """The images a folder of normal parts gives a fit (:func:`normal_folder_images`)."""

    images: list[Path]
    """The images fitted on, in the order read."""
    notes: list[str]
    """What was not read, or read though nested, each a line to say."""
    train_good: bool
    """Whether the folder is a dataset's ``train/good`` (its subfolders read)."""


def normal_folder_images(folder: Path) -> NormalFolder:
    """The images to fit on in ``folder``, a folder of normal parts that is no dataset (no ``train/`` or ``test/`` in it): the one
    rule of `defectlens fit FOLDER` and :meth:`Inspector.fit`, which had read a plain folder's subfolders while the command did
    not (``ng/`` beside ``ok/`` fitted as normal; regression probe 2026-12-07).

    A dataset's ``train/good`` is read with its subfolders, as a category's is; a plain folder's own images only (its subfolders
    may hold anything: an examples/ folder, ng/ beside ok/), those left said in :attr:`NormalFolder.notes`, as are formats not
    read. Refused: a folder of labelled parts (:func:`require_normal_folder`), one that cannot be read, and one whose images
    are all in its subfolders."""
    require_normal_folder(folder)
    said: list[str] = []
    if is_train_good(folder):
        # A train/good with its subfolders, as `fit CATEGORY` reads it (own-dataset probe 2026-12-07: `fit CAT/train/good` had
        # fitted on 8 of its 12 images, those filed by date left out unsaid).
        unreadable: list[tuple[Path, str]] = []
        images = noted_images_below(folder, said, unreadable)
        require_readable(unreadable, "move it out of the folder")
        return NormalFolder(images, said, True)
    below = images_below(folder)
    # The folder itself (listed but not entered, mode 644, had ended Inspector.fit in a PermissionError traceback); its
    # subfolders are not read, so one closed among them changes nothing.
    require_readable([(where, why) for where, why in below.unreadable_folders if where == Path(folder)], "fit on another folder")
    images = [p for p in below.images if p.parent == Path(folder)]
    nested = len(below.images) - len(images)
    masks = [p for p in below.masks if p.parent != Path(folder)]
    if not images and not nested and masks:
        # Not "holds no images" unsaid: a camera's folder named masks/ (final probe 2026-12-07: its note was lost on the way).
        raise DatasetLayoutError(f"holds no image of its own, and its {len(masks)} file(s) in masks/ folders (e.g. {masks[0].name}) are "
                                 "masks, not images", folder, "put the normal parts' images in it (not in a folder named masks)")
    if not images and nested and not folder_any_case(folder, "test").is_dir():
        # Not "lay it out as MVTec-AD does" after a note to fit on the subfolder (regression probe 2026-12-07).
        raise DatasetLayoutError(f"holds no image of its own, and {nested} in its subfolders (a plain folder's own images are fitted "
                                 "on)", folder, "fit on the subfolder of the normal parts' images (a dataset's: its folder, or train/good)")
    if nested and images:
        said.append(f"{folder}: {nested} image(s) in its subfolders are not read (a plain folder's own images are fitted on): move "
                    "the normal parts' images into it, or fit on the subfolder that holds them")
    if masks:
        # Said apart, as left out: a camera's folder named masks/ had been passed over unsaid, then counted with the images to
        # move in (regression probes 2026-12-07), which would have trained on masks.
        said.append(f"{folder}: {len(masks)} file(s) in its masks/ folders (e.g. {masks[0].name}) are left out: files there are masks, not images")
    if other := [p.name for p in below.other_formats if p.parent == Path(folder)]:
        if not images and not nested:
            # Its images all in formats not read: said as that, not as an empty folder (regression probe 2026-12-07).
            raise DatasetLayoutError(f"holds no image that is read: its {len(other)} image(s) are in formats not read (e.g. {other[0]})",
                                     folder, "convert them to PNG or JPEG")
        said.append(f"{folder}: {len(other)} image(s) in formats not read (e.g. {other[0]}): convert them to PNG or JPEG to use them")
    return NormalFolder(images, said, False)


def require_normal_folder(folder: Path) -> None:
    """Refuse a ``folder`` to fit on whose images are parts labelled by folder, defective ones among them, rather than
    normal parts alone (:func:`_labelled_layout`): read whole as normal parts (:meth:`Inspector.fit` reads a folder's
    subfolders), such a folder taught a model its defects (regression probe 2026-12-07: `cookie/test`, image AUROC 0.625).
    The one rule of `defectlens fit` and :meth:`Inspector.fit`."""
    if (why := _labelled_layout(folder)) is not None:
        raise DatasetLayoutError(f"{why}: fitted on as normal parts, the model would learn its defects as normal", folder,
                                 "fit on the normal parts' images alone: the category folder (its train/good/), or a good/ folder")


def _labelled_layout(folder: Path) -> str | None:
    """Why the images below ``folder`` are labelled parts — a dataset's test split, a folder within one of its defect types,
    a review export — or None. Folders without images and ``masks/`` in any case count for nothing (regression probe
    2026-12-07: a folder of good parts beside an empty one had been refused; so had good/ beside 2024-05/, both good parts,
    which is why folders are not judged by a good/ among them)."""
    where = Path.cwd() / folder
    if path_is(where / REVIEW_EXPORT_MANIFEST, "file") and path_is(folder_any_case(where, "calibration"), "dir"):
        return "is a review export (`defectlens export-reviews`), whose calibration/defective/ and examples/ hold defective parts"
    # Within a split of a dataset (one with train/ or ground_truth/ beside it): a defect type's folder, or one below it.
    for inner in (where, *where.parents):
        split = inner.parent
        beside = (folder_any_case(split.parent, name) for name in ("train", GROUND_TRUTH))
        if folded_name(split.name) in LABELLED_SPLITS and any(path_is(other, "dir") for other in beside):
            if is_good_folder(inner):
                return None
            return f"is within the defect type {inner.name}/ of a dataset's {split.name}/ split"
    if folded_name(where.name) in LABELLED_SPLITS:
        try:
            typed = [d for d in where.iterdir() if not d.name.startswith(".") and d.name.lower() != MASKS_FOLDER and path_is(d, "dir")
                     and not is_good_folder(d) and images_below(d).images]
        except OSError:
            return None  # said by whoever lists it
        if typed:
            return f"is a dataset's {where.name}/ split, whose {typed[0].name}/ holds defective parts"
    return None


def exported_machine_masks(export: Path) -> set[Path]:
    """The masks beside a review export's calibration images that the export itself wrote, as they were: an export by
    defectlens 0.3.3 or earlier put the model's own regions there (its manifest's entries say ``"mask": true``), which
    give the pixel threshold back unchanged (`calibrate` had used them; upgrade probe 2026-12-06). A mask changed since the
    manifest was written (by the file's time, which a copy may reset), or in another format, is taken as a person's."""
    manifest = export / REVIEW_EXPORT_MANIFEST
    try:
        written = manifest.stat().st_mtime
        entries = json.loads(manifest.read_text(encoding="utf-8")).get("inspections", [])
        names = {str(e["file"]) for e in entries if isinstance(e, dict) and e.get("mask") is True}
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return set()
    masks = export / "calibration" / "defective" / MASKS_FOLDER
    found = set()
    for name in names:
        mask = masks / f"{name}_mask.png"
        with contextlib.suppress(OSError):
            if mask.stat().st_mtime <= written + 1.0:  # the export writes its manifest last
                found.add(mask)
    return found


def labelled_category(good: Sequence[Path], defective: Sequence[tuple[Path, str]], root: Path, given_in: Sequence[Path] = ()) -> Category:
    """A test split from images labelled by the folders they were given in (no MVTec layout): every
    ``good`` image good, each ``defective`` image of the type given beside it, its mask found as
    :func:`mask_for_image` finds one (``<stem>_mask.png`` beside it or in ``masks/``, or MVTec's
    ground_truth/), as found in the folders ``given_in``. ``root`` names the split in reports. `calibrate` had pointed to `evaluate`, which
    took only a category in the MVTec layout."""
    test = [LabelledImage(Path(p), GOOD, None) for p in good]
    notes: list[str] = []
    masks = masks_for_images([Path(p) for p, _ in defective], notes, given_in)
    test += [LabelledImage(Path(p), defect_type, masks[Path(p)]) for p, defect_type in defective]
    return Category(Path(root), [], test, notes=notes)


def train_test_overlap(category: Category, trained_on: str | Path | None = None, fitted_on: Collection[str] | None = None) -> list[Path]:
    """Test images whose picture is one the model was fitted on: scored against a bank that holds them, they flatter every
    metric (4 copies lifted image AUROC 0.979 → 0.988 without a word). Told by the pictures' digests the model recorded
    (``fitted_on``), else (a model saved before they were recorded) by the category's ``train/good`` and the folder it was
    fitted on (``trained_on``, when it is still there: a plant's own test folder beside no ``train/`` had been said to hold
    none; metrics audit 2026-12-06)."""
    if fitted_on is not None:
        return fitted_copies([t.path for t in category.test], fitted_on, None)
    originals = list(category.train_good)
    if trained_on is not None:
        originals += training_folder_images(trained_on)
    return copies_among([t.path for t in category.test], list(dict.fromkeys(originals)))


def fitted_copies(paths: Sequence[Path], fitted_on: Collection[str] | None, trained_on: str | Path | None) -> list[Path]:
    """Those of ``paths`` that are pictures a model was fitted on: by the digests it recorded (``fitted_on``: exact, and no
    training image decoded again — a second an image at 5 M pixels; regression probe 2026-12-06), else by the images of the
    folder it was fitted on (``trained_on``, when it is still there; a ``--max-images`` fit took only some of them)."""
    if fitted_on is not None:
        seen = set(fitted_on)
        return [p for p in paths if picture_digest(p) in seen]
    folder = training_folder_images(trained_on) if trained_on else []
    return copies_among(paths, folder) if folder else []


def training_folder_images(folder: str | Path) -> list[Path]:
    """The image files directly in a model's training folder (its recorded ``trained_on``), as a fit of a plain folder reads
    it: its subfolders (a lot's ``rejects/``) were never fitted on, and had been taken for training images (regression
    probe 2026-12-06). Empty when the folder is gone."""
    root = Path(folder)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def cross_label_copies(good: Sequence[Path], defective: Sequence[Path]) -> list[tuple[Path, Path]]:
    """Defective images that are a good one's picture (:func:`picture_digest`), each with that good one: one part given both
    labels."""
    given_good = set(good)
    return [(p, first) for p, first in picture_copies([*good, *defective]).items() if (p in given_good) != (first in given_good)]


def picture_digest(path: Path) -> str | None:
    """The digest of the picture in ``path``: its pixels as read for inspection (:func:`~defectlens.io.images.image_digest`),
    so that a copy saved with other metadata or compression is the same picture, as :meth:`Inspector.calibrate` and batch
    scoring tell copies (the files' bytes had let a crack re-saved with a PNG comment be a good part in `calibrate`, and be
    split from its twin's batch; regression probe 2026-12-06). None for a file that cannot be read: its reader lists it.
    Remembered for the file as it is (its size and modification time): `calibrate` and `evaluate` ask it of each image in
    two or three checks. Decoding costs 1 to 3 ms an image on the shared parts."""
    try:
        state = path.stat()
    except OSError:
        return None
    return _digest_of(os.fspath(path), state.st_size, state.st_mtime_ns)


@functools.lru_cache(maxsize=8192)
def _digest_of(path: str, size: int, mtime_ns: int) -> str | None:
    """:func:`picture_digest` of the file at ``path`` while it has this size and modification time."""
    # An image too large for the memory left: no copy told, and its reader lists it (it had ended `evaluate` and `calibrate` in
    # their copy checks, before any image was scored; regression probe 2026-12-07).
    with shortage_caught():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # what reading the image has to say is said when it is read to be scored
                return image_digest(load_image(path))
        except (DefectlensError, OSError):
            return None
    return None


def copies_among(paths: Sequence[Path], originals: Sequence[Path]) -> list[Path]:
    """Those of ``paths`` whose picture is one of ``originals``' (unreadable files are none: their readers list them)."""
    seen = {picture_digest(p) for p in originals} - {None}
    return [p for p in paths if picture_digest(p) in seen]


def file_identity(path: str | Path) -> object:
    """What names a file whatever name it is reached by: its device and inode (a link and its target, two hard links: a hard link
    had been a second file, inspected and written twice; regression probe 2026-12-07), else, for a name that leads nowhere (yet),
    where it would lead, else the name itself (one the system refuses: a NUL in it)."""
    try:
        return folder_identity(path) or os.path.realpath(path)
    except (ValueError, OSError):
        return f"{path}"


def first_names(paths: Sequence[NamedFile]) -> tuple[list[NamedFile], list[tuple[NamedFile, NamedFile]]]:
    """Each file of ``paths`` once, under the first name it is given by (a link and its target, a relative and an absolute name
    are one file, and so are two hard links to it), and each name given again with the first of its file's: the one rule of
    `inspect`, `evaluate` and :meth:`Inspector.inspect_batch`. A name the system refuses (a NUL in it) is its own file, for
    its reader to refuse."""
    first: dict[object, NamedFile] = {}
    unique: list[NamedFile] = []
    again: list[tuple[NamedFile, NamedFile]] = []
    for path in paths:
        if (key := file_identity(path)) in first:
            again.append((path, first[key]))
        else:
            first[key] = path
            unique.append(path)
    return unique, again


def picture_copies(paths: Sequence[Path]) -> dict[Path, Path]:
    """Each of ``paths`` whose picture is an earlier one's (:func:`picture_digest`), with that earlier one (the first of it)."""
    first: dict[str, Path] = {}
    copies: dict[Path, Path] = {}
    for path in paths:
        if (digest := picture_digest(path)) is None:
            continue
        if digest in first:
            copies[path] = first[digest]
        else:
            first[digest] = path
    return copies


def drop_shared_masks(masks: dict[Path, Path | None], notes: list[str]) -> None:
    """Two images of one stem (``a.png`` and ``a.jpg``) would both take ``a_mask.png``: the mask
    belongs to one of them, and which one the name cannot say, so neither gets it."""
    by_mask: dict[str, list[Path]] = {}
    for image, mask in masks.items():
        if mask is not None:
            # By the file, however it is named (one image given relative, one absolute: regression probe 2026-12-07; through a
            # linked masks/ folder, one file for two lots: regression probe 2026-12-08).
            by_mask.setdefault(os.path.realpath(mask), []).append(image)
    for shared, images in by_mask.items():
        # One file under two names (a link and its target, relative and absolute) is one image, and keeps its mask (regression
        # probe 2026-12-07: a folder given as itself and through a link had lost every mask).
        if len({os.path.realpath(image) for image in images}) > 1:
            for image in images:
                masks[image] = None
            notes.append(f"{shared}: the mask of {len(images)} images of one name ({', '.join(map(str, images))}); "
                         "used for none — rename them apart")


GOOD_MASKS_CHECKED = 16
"""Masks of a good folder read to tell whether they draw a defect (:func:`_note_masks_of_good`)."""


def _note_masks_of_good(good_dir: Path, masks_dir: Path | None, notes: list[str]) -> None:
    """Note the masks marking a defect that a good folder holds (``<stem>_mask.*`` beside its images) or has under ground_truth/:
    a part labelled good that someone drew a defect on is a labelling conflict, passed over without a word (messy-masks probe
    2026-12-07). Empty ones, as some datasets give every normal image, are no conflict."""
    candidates = [p for p in list_images(good_dir) if is_mask_file(p)]
    if masks_dir is not None and path_is(masks_dir, "dir") and unreadable_folder(masks_dir) is None:
        candidates += [p for p in sorted(masks_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES]
    marked = []
    # A few read, not all: a dataset giving every good image an empty mask had made `fit` 4x slower for a split it does not read
    # (regression probe 2026-12-07); what reading one says (an all-white one: "invert it") is no matter for a mask not read.
    with collected_warnings():
        for mask in candidates[:GOOD_MASKS_CHECKED]:
            with contextlib.suppress(DefectlensError, ValueError):
                if load_mask(mask).any():
                    marked.append(mask)
    if marked:
        checked = f" of the {GOOD_MASKS_CHECKED} read" if len(candidates) > GOOD_MASKS_CHECKED else ""
        notes.append(f"{good_dir}: {len(marked)} mask(s){checked} mark a defect on images labelled good (e.g. {marked[0]}): they are not "
                     "read, and the images count as good — if those parts are defective, move them to a defect type's folder")


def load_category(root: str | Path) -> Category:
    """Index a category folder. Missing splits give empty lists; callers ask for what they need."""
    base = Path(root)
    if not base.is_dir():
        raise DatasetLayoutError("category folder not found", base, "pass a folder in MVTec-AD layout")
    notes: list[str] = []
    unreadable: list[tuple[Path, str]] = []
    train_dir = folder_any_case(base, "train", GOOD)
    # Each split's folder that cannot be listed is recorded, not raised here: the command that reads that split refuses
    # it (`fit` reads train/good only), and one it does not read stops nothing (regression probe 2026-12-07).
    for split in (train_dir.parent, train_dir):
        if (why := unreadable_folder(split)) is not None:
            unreadable.append((split, why))
            break
    train = noted_images_below(train_dir, notes, unreadable) if path_is(train_dir, "dir") and not unreadable else []
    test_dir, gt = folder_any_case(base, "test"), folder_any_case(base, GROUND_TRUTH)
    test_why, gt_why = unreadable_folder(test_dir), unreadable_folder(gt, os.X_OK)
    unreadable.extend((folder, why) for folder, why in ((test_dir, test_why), (gt, gt_why)) if why is not None)
    for read in (train_dir.parent, train_dir, test_dir, gt):
        notes.extend(f"{other}: beside {read.name}/, which is read; its files are not — merge the two"
                     for other in other_case_folders(read.parent, read))
    # Imported here: the taxonomy reads its file through defectlens.io, which imports this module.
    from defectlens.taxonomy import normal_type_name

    test: list[LabelledImage] = []
    if path_is(test_dir, "dir") and test_why is None:
        type_dirs = sorted(d for d in test_dir.iterdir() if path_is(d, "dir") and not d.name.startswith(".") and not closed_lost_and_found(d))
        spellings: dict[str, list[str]] = {}
        for d in type_dirs:
            spellings.setdefault(folded_name(d.name), []).append(d.name)
        # test/Crack beside test/crack: two types by name, one by meaning; said (regression probe 2026-12-06).
        notes.extend(f"{test_dir}: {' and '.join(names)} are one type in two spellings, read as {len(names)} types — merge them"
                     for names in spellings.values() if len(names) > 1)
        for type_dir in type_dirs:
            images = noted_images_below(type_dir, notes, unreadable)
            # "Good", "GOOD": the normal images, whatever the case (they were a defect type named Good).
            good = is_good_folder(type_dir)
            type_masks = _ground_truth_folder(base, type_dir.name) if gt_why is None else gt / type_dir.name
            # A masks' folder that cannot be listed or entered: recorded, and its masks not looked for (they had been "none"
            # without a word, and the pixel metrics null, exit 0; regression probe 2026-12-07).
            masks_why = None if good or gt_why is not None else unreadable_folder(type_masks, os.X_OK)
            if masks_why is not None:
                unreadable.append((type_masks, masks_why))
            elif not good and gt_why is None and not path_is(type_masks, "dir") and path_is(gt, "dir") and unreadable_folder(gt):
                # Entered but not listed, ground_truth/ is searched by the type's exact name: "Crack" for test/crack is not
                # found, and its masks had been "none" with no word of why (regression probe 2026-12-07).
                notes.append(f"{gt}: cannot be listed (permission denied), so the masks of {type_dir.name} were looked for in "
                             f"{type_masks.name}/ by that exact name, which is not there — give this user read permission on it "
                             "to find a folder of another case")
            # In the masks' folder found above once for the type (each image had looked for it again).
            masks = {img: None if good or gt_why is not None or masks_why is not None else _mask_or_unreadable(type_masks, type_dir, img, unreadable)
                     for img in images}
            if not good and type_dir.is_symlink():
                # A type folder linked in from another dataset: its masks are beside the folder linked to, as --defective finds
                # them (regression probe 2026-12-07: `evaluate CATEGORY` had found none, pixel metrics n/a).
                masks = {img: mask if mask is not None else mask_for_image(img) for img, mask in masks.items()}
            drop_shared_masks(masks, notes)
            if not good and gt_why is None and masks_why is None and path_is(type_masks, "dir"):
                # ground_truth/Crack beside ground_truth/crack: the masks in the other were passed over without a word.
                notes.extend(f"{other}: beside {type_masks.name}/, whose masks are read for {type_dir.name}; its own are not — merge the two"
                             for other in other_case_folders(gt, type_masks) if other.name not in spellings[folded_name(type_dir.name)])
            if good:
                _note_masks_of_good(type_dir, type_masks if gt_why is None else None, notes)
            beside = [m for m in masks.values() if m is not None and m.parent == type_dir]
            if beside and not path_is(type_masks, "dir"):
                notes.append(f"{type_dir}: masks read from beside their images ({len(beside)} `<stem>_mask.png` files), not from ground_truth/")
            for img in images:
                test.append(LabelledImage(img, GOOD if good else normal_type_name(type_dir.name), masks[img]))
    # Listed only where it may be (a ground_truth/ that may be entered but not listed is searched by the masks' names, and had
    # then ended every command here in a PermissionError; regression probe 2026-12-07).
    if path_is(gt, "dir") and unreadable_folder(gt) is None:
        types = {folded_name(d.name) for d in test_dir.iterdir() if path_is(d, "dir")} if path_is(test_dir, "dir") and test_why is None else set()
        # A lost+found is the file system's, never a type's masks (regression probe 2026-12-07: "rename it as its test folder").
        for folder in sorted(d for d in gt.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name != LOST_AND_FOUND
                             and folded_name(d.name) not in types):
            # Its masks were passed over without a word (layout probe 2026-12-06: ground_truth/dent beside no test/dent).
            notes.append(f"{folder}: no test/{folder.name} folder beside it; its masks are not read — rename it as its test folder is named")
    if not train and not test and unreadable:
        # Not "lay it out as MVTec-AD does": the images may all be in the folders it cannot read (regression probe).
        where, why = unreadable[0]
        raise DatasetLayoutError(f"folder cannot be read ({why}), and no other holds images", where,
                                 "give this user read and enter permission on it (chmod a+rx)")
    if not train and not test:
        raise DatasetLayoutError(
            "no images found under train/good or test/*",
            base,
            f"lay it out as MVTec-AD does: normal images in {base}/train/good/, test images in {base}/test/<good or defect type>/",
        )
    # A test image reached twice under one label (a hard or symbolic link beside its file) is one part: counted twice by the notes
    # and the copies check while scored once (regression probe 2026-12-07). Under two labels it is the caller's to refuse.
    # The name kept is the one with a mask, where only one has (regression probe: the first name's had been kept, maskless).
    label_of = {i.path: i.defect_type for i in test}
    _, again = first_names([i.path for i in sorted(test, key=lambda i: i.mask_path is None)])
    if twice := [(name, first) for name, first in again if label_of[name] == label_of[first]]:
        notes.append(f"{len(twice)} test image(s) are files already listed under another name (e.g. {twice[0][0]} is {twice[0][1]}): "
                     "each is counted once")
    dropped = {name for name, _ in twice}
    test = [i for i in test if i.path not in dropped]
    taxonomy = base / "taxonomy.json"
    return Category(base, train, test, taxonomy if taxonomy.is_file() else None, notes, sorted(unreadable))
