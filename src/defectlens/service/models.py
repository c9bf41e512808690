"""The models a service process inspects with: each loaded once, scored by one worker thread.

Uploads that arrive together are scored together (micro-batching): a memory bank scores a
batch of images faster per image than one at a time, and one worker keeps the two shared
cores from being split between competing forward passes. The report and the overlay run in
the request's own thread, overlapping the next batch's scoring.

Every PyTorch call — loading the models, scoring, locating and typing the regions — runs on
that one worker thread (:meth:`ModelPool.load`). PyTorch's OpenMP runtime keeps a team of
threads for each thread that calls it: a model loaded on the main thread and scored on the
worker leaves two teams for two cores, the runtime then stops its threads spinning between
parallel regions, and each of the encoder's many small regions waits on a sleeping thread.
Measured on the magnetic-tile model (2026-12-04, 2 cores): 38–45 ms a scoring on the worker
after loading on the main thread, 26–27 ms with both on the worker, as on the main thread alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from defectlens.descriptor import CARD_FILE, CARD_HEADING, EXAMPLES_DIR, TAXONOMY_FILE, model_stamp, part_taxonomy, without_folders
from defectlens.engine import Analysis, Locator, inspection_overlay, prepare_analysis, region_mask_png, type_with_notes, verdict_record
from defectlens.errors import ConfigError, DefectlensError
from defectlens.explain import shown_type
from defectlens.explain.report import build_report, render_markdown
from defectlens.inspector import Inspector
from defectlens.io import png_bytes
from defectlens.io.atomic import printable_text
from defectlens.io.names import same_spelling
from defectlens.taxonomy import load_taxonomy, same_type_name
from defectlens.types import AnomalyResult, Inspection, RegionType, Report

MAX_BATCH = 8
"""Most uploads scored in one forward pass (more only adds latency on 2 cores)."""
REJECT_TYPE = "not-a-defect"
"""The type a reviewer gives a region that is no defect at all."""
UNKNOWN_TYPE = "unknown"


@dataclass
class Outcome:
    """One inspected upload: the verdict, typed regions, report and rendered pictures."""

    inspection: Inspection
    region_types: list[RegionType]
    report: Report
    report_text: str
    overlay_png: bytes
    mask_png: bytes
    seconds: float
    """Scoring (including the wait for the batch) through rendering."""
    model_fitted_at: str | None = None
    """When the model that judged it was fitted (its provenance), or None."""
    model_fingerprint: str | None = None
    """Its training images' fingerprint, or None."""


@dataclass
class LoadedModel:
    """A model folder loaded once: the Inspector, its classification set-up and its card."""

    name: str
    path: Path
    inspector: Inspector
    analysis: Analysis
    card: str
    types: tuple[str, ...]
    """Defect types a reviewer may assign (taxonomy or classifier types, 'unknown', 'not-a-defect')."""
    notes: list[str] = field(default_factory=list)
    stamp: tuple[int, int] | None = None
    """Which writing of the folder was loaded (:func:`~defectlens.descriptor.model_stamp`)."""

    def disk_change(self) -> str | None:
        """How the folder changed since it was loaded, in words for a note, or None: written again (a re-fit, a calibration;
        the service goes on with the model it holds, which no longer matches `defectlens inspect`), or gone (moved or removed:
        said "written again", a restart was then advised that would not find it; plant probe 2026-12-06)."""
        if self.stamp is None or (now := model_stamp(self.path)) == self.stamp:
            return None
        if now is None:
            return (f"{self.path} is gone since this service loaded it (moved or removed); the service still uses the model it "
                    "loaded — put the folder back, or serve it from where it is now, before a restart")
        return (f"{self.path} was written again since this service loaded it; the service still uses the model it loaded — "
                "restart it to use the new one")

    def changed_on_disk(self) -> bool:
        """Whether the folder was written again or is gone since it was loaded (:meth:`disk_change`)."""
        return self.disk_change() is not None

    def summary(self) -> dict:
        """What `GET /models` shows: settings, thresholds, types, card."""
        ins = self.inspector
        t = ins.detector.thresholds
        notes = list(self.notes)
        if change := self.disk_change():
            notes.append(change)
        # Folders by their last names, as the card shows them (it needs no token): a fit's notes and the model's own named the
        # training images and the model's files by their whole paths (regression probe 2026-12-07).
        folders = _model_folders(self.path, ins)

        def hidden(value: Any) -> Any:
            if isinstance(value, str):
                return without_folders(value, folders)
            return [hidden(v) for v in value] if isinstance(value, list | tuple) else value

        fit_summary = {k: hidden(v) for k, v in ins.fit_summary.__dict__.items()} if ins.fit_summary else None
        return {
            "name": self.name,
            "detector": ins.detector.name,
            # What runs the encoder, as each inspection JSON of `inspect` says: two models served, one
            # exported to OpenVINO, could not be told apart.
            "runtime": ins.runtime,
            # Which fit this is, as each stored inspection's model_fitted_at and model_fingerprint say it: they were only
            # inside the card's text, so a page could not tell whether a row was judged by the model served now.
            "fitted_at": ins.provenance.fitted_at if ins.provenance else None,
            "fingerprint": ins.provenance.fingerprint if ins.provenance else None,
            "settings": dict(settings.__dict__) if (settings := ins.fit_settings) is not None else None,
            "thresholds": t.to_json() if t is not None else None,
            "fit_summary": fit_summary,
            "types": list(self.types),
            "classifier": self.analysis.classifier is not None,
            # Which examples it types with, by type: after a restart on an export's examples, nothing had said which were
            # loaded (review-loop probe 2026-12-06).
            "examples": self.analysis.classifier.examples_per_type() if self.analysis.classifier is not None else None,
            "card": self.card,
            "notes": hidden(notes),
        }


CARD_MAX_BYTES = 1 << 20
"""The largest ``card.md`` the service reads."""


def _own_card(path: Path, notes: list[str]) -> str | None:
    """A folder's ``card.md`` as it is on disk: a file of its own, not a link, under :data:`CARD_MAX_BYTES`, in UTF-8; else
    None, said in ``notes`` where the file is there. A card.md linked to another file had served that file to anyone asking ``GET
    /models``, which needs no token (security probe 2026-12-07)."""
    refused = f"{CARD_FILE} is {{}}: not shown, the card is made from the model's own records"
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        return None
    except OSError as exc:
        notes.append(refused.format("a symbolic link" if exc.errno == errno.ELOOP else f"unreadable ({exc.strerror or exc})"))
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder or a FIFO (a folder had ended `serve` in a traceback: regression probe)
            notes.append(refused.format("no file"))
            return None
        data = os.read(fd, CARD_MAX_BYTES + 1)
    except OSError as exc:
        notes.append(refused.format(f"unreadable ({exc.strerror or exc})"))
        return None
    finally:
        os.close(fd)
    try:
        if len(data) > CARD_MAX_BYTES:
            raise ValueError
        return data.decode("utf-8")
    except ValueError:
        notes.append(refused.format(f"over {CARD_MAX_BYTES >> 20} MiB or not UTF-8"))
        return None


def _model_folders(root: Path, inspector: Inspector) -> list[str]:
    """The folders a served model's card and notes name that ``GET /models`` shows by their last names: the model's, as given and
    as it is, and the one it was fitted on."""
    trained_on = inspector.provenance.trained_on if inspector.provenance else None
    return [str(root), os.path.realpath(root), *([trained_on] if trained_on else [])]


def _card(name: str, root: Path, inspector: Inspector, notes: list[str]) -> str:
    """The model's card: the folder's ``card.md`` where its owner wrote one of their own; the card defectlens writes made again
    from the folder's records (where card.md is one defectlens wrote, however old: a card written before the part's examples
    changed had been served whole), its folders by their last names (``GET /models`` needs no token: the training data's whole
    path had been told to anyone; security probe 2026-12-07); where neither can be had, a short card made from the loaded model."""
    from defectlens.export import model_card

    written = _own_card(root / CARD_FILE, notes)
    # Told by its start, a byte-order mark or blank lines put in by an editor aside (one saved again on Windows had been served as
    # its owner's, whole paths and all; regression probe 2026-12-07).
    if written is not None and not written.lstrip("\ufeff \t\r\n").startswith(CARD_HEADING):
        return written  # the owner's own: theirs to show, as they wrote it
    with contextlib.suppress(DefectlensError, OSError):
        return without_folders(model_card(root, full_paths=False), _model_folders(root, inspector))
    if written is not None:
        return without_folders(written, _model_folders(root, inspector))  # defectlens's, its records unreadable: paths hidden all the same
    s, t = inspector.settings, inspector.detector.thresholds
    lines = [
        f"# {name}",
        "",
        f"- detector: {inspector.detector.name}",
        f"- backbone: {s.backbone}, canvas {s.image_size} px, coreset ratio {s.coreset_ratio}",
        f"- thresholds: image {t.image:.4f}, pixel {t.pixel:.4f} ({t.source})" if t else "- thresholds: none",
    ]
    if inspector.fit_summary is not None:
        fs = inspector.fit_summary.__dict__
        lines.append("- fit: " + ", ".join(f"{k} {v}" for k, v in fs.items() if isinstance(v, (int, float, str))))
    return "\n".join(lines) + "\n"


def model_spec(spec: str | Path) -> tuple[str | None, Path]:
    """``(name, folder)`` of a served model given as ``DIR`` (named after its folder) or ``NAME=DIR``: versioned folders
    (``models/cookie/v3``) had all been named ``v3``, and a part's history split at each new version. A folder whose own
    name holds ``=`` is taken as a folder."""
    text = str(spec)
    name, sep, folder = text.partition("=")
    if not sep or Path(text).exists():
        return None, Path(spec)
    if "/" in name or "\\" in name:
        if Path(folder).is_dir():
            # Read as one folder's path, "line/3=models/cookie" had been refused as "model folder not found" (probe).
            raise ConfigError(f"model name {name!r} in {text!r} holds a / or \\", None, "name it without one, e.g. line-3=models/cookie")
        return None, Path(spec)
    if not name.strip() or len(name) > 200 or not name.isprintable():
        raise ConfigError(f"model name {name!r} in {text!r} is empty, too long or not printable", None,
                          "give it as NAME=DIR, e.g. cookie=models/cookie/v3")
    return same_spelling(name.strip()), Path(folder)


def _as_given(folder: Path) -> Path:
    """``folder`` made absolute as the user's shell knows the working folder (``$PWD``, through links) where that is this
    process's: the system's own working folder is the links' target, and `serve .` inside `current -> v2` was "v2"
    (regression probe 2026-12-06)."""
    shell = os.environ.get("PWD")
    # Not with "..": the system takes it from the link's target, and joined to $PWD it named a folder that never was (the
    # second regression probe: `serve ..` inside a link served "svc").
    if not folder.is_absolute() and ".." not in folder.parts and shell and os.path.isabs(shell):
        with contextlib.suppress(OSError):
            if os.path.samefile(shell, "."):
                return Path(os.path.normpath(os.path.join(shell, folder)))
    try:
        # With "..", the folder the system takes, links followed: cleaned as text, "L/../m1" named another folder than the
        # one loaded, which was then watched in its stead (third regression probe).
        # Only the part up to the last "..", where the system takes it: the rest as given, links kept (upgrade probe
        # 2026-12-06: "deep/../current" was served as its target's name; a link after it was not watched).
        if ".." in folder.parts:
            last = len(folder.parts) - folder.parts[::-1].index("..")
            return Path(os.path.realpath(Path(*folder.parts[:last]))).joinpath(*folder.parts[last:])
        return Path(os.path.abspath(folder))
    except OSError:  # a working folder that is gone: the folder as given
        return folder


def load_model(path: str | Path, name: str | None = None) -> LoadedModel:
    """Load a model folder with its optional ``taxonomy.json`` and ``examples/`` (classifier).

    A zero-shot grounding model is read with the per-image cue: a service scores uploads in
    whatever batches they happen to arrive in, and a verdict must not depend on the neighbours.
    """
    root = Path(path)
    if not root.is_dir():
        raise ConfigError("model folder not found", root, "pass a folder written by `defectlens fit`")
    taxonomy_path = part_taxonomy(root)
    if taxonomy_path is None and Inspector.needs_taxonomy(root):
        # The detector's own refusal named `inspect --taxonomy`, which serve has not (probe 2026-12-06).
        raise ConfigError("a zero-shot grounding model reads the part it serves through its taxonomy, and the folder holds none", root,
                          f"put the part's {TAXONOMY_FILE} in the model folder")
    part = load_taxonomy(taxonomy_path, require_descriptions=True) if taxonomy_path and Inspector.needs_taxonomy(root) else None
    inspector = Inspector.load(root, part, "token")
    if inspector.compares_batch:
        # Batch scoring rates each image against the others read with it: in a service those are
        # whatever uploads arrive together, so a verdict would depend on its neighbours.
        raise ConfigError(
            f"the {inspector.detector.name} detector scores images only against others inspected with them; "
            "a service scores each upload on its own",
            root,
            "serve a model fitted on normal images (memory bank) or a grounding model, and inspect lots with `defectlens inspect`",
        )
    examples = root / EXAMPLES_DIR if (root / EXAMPLES_DIR).is_dir() else None
    # Examples without masks are located by this model, as `inspect --examples` locates them.
    analysis = prepare_analysis(taxonomy_path, examples, 5, "template", locator=Locator.of(inspector) if examples else None)
    analysis.taxonomy = analysis.taxonomy or getattr(inspector.detector, "taxonomy", None)
    names: list[str] = []
    if analysis.taxonomy is not None:
        # The types a reviewer may assign are the taxonomy's, as it spells them: its examples' "CRACK" had been offered beside its
        # "crack", and a type it lacks (reported unknown) taken in a review (regression probe 2026-12-07).
        names += list(analysis.taxonomy.names)
    elif analysis.classifier is not None:
        for n in analysis.classifier.class_names:
            if not any(same_type_name(n, known) for known in names):
                names.append(n)
    types = (*names, UNKNOWN_TYPE, REJECT_TYPE)
    # The folder as given, its link not followed: `current -> v2` served as "v2" split a part's history at each rollout
    # (plant probe 2026-12-06); made absolute, "." is the folder's own name.
    # Kept whole, so that a refit or a removal of the folder served as "." is seen by its path, and said by it: asked of a
    # working folder a save had swapped away, the system had no answer and /health a 500 (second regression probe).
    root = _as_given(root)
    # A folder name that is not UTF-8 (Latin-1 bytes) as a backslash escape (\xe9): the store could not hold Python's stand-ins for
    # its bytes, and every request and the store's watch thread had failed (2026-12-07).
    label = same_spelling(name or printable_text(root.name))
    notes = list(analysis.notes)
    if not names and not analysis.taxonomy_unread:
        # (A taxonomy that could not be read is said as such in the notes: "no taxonomy.json" beside it had contradicted it.)
        # Found at the first typed review (422 "known: unknown, not-a-defect"), and export-reviews then wrote no example.
        notes.append(f"no defect types (no {TAXONOMY_FILE} or {EXAMPLES_DIR}/ in the model folder): reviews may give verdicts and mark "
                     f"regions unknown or not-a-defect only, and export-reviews writes no type examples — put the part's {TAXONOMY_FILE} "
                     "in the model folder (fit keeps it there when its data holds one)")
    card = _card(label, root, inspector, notes)
    return LoadedModel(label, root, inspector, analysis, card, types, notes, model_stamp(root))


@dataclass
class _Job:
    model: LoadedModel
    image: np.ndarray
    source: str
    future: Future


class ModelPool:
    """The loaded models and the worker thread that scores their uploads in batches.

    ``models`` are models loaded already, or a function that loads them, which then runs on the
    worker thread itself (see the module's note; :meth:`load` does that). A loading error is
    raised here, and the worker stopped.
    """

    def __init__(self, models: Sequence[LoadedModel] | Callable[[], Sequence[LoadedModel]]):
        self._jobs: queue.Queue[_Job | None] = queue.Queue()
        loaded: Future[Sequence[LoadedModel]] = Future()
        self._worker = threading.Thread(target=self._run, args=(models, loaded), name="defectlens-scorer", daemon=True)
        self._worker.start()
        try:
            models = loaded.result()
        except BaseException:
            # The loader failed (the worker has ended), or this wait was interrupted (the worker,
            # still loading, stops at the marker once done).
            self._jobs.put(None)
            self._worker.join(timeout=30)
            raise
        self.models: dict[str, LoadedModel] = {}
        try:
            if not models:
                raise ConfigError("no model given", None, "pass at least one model folder")
            for m in models:
                if m.name in self.models:
                    raise ConfigError(f"two models are named {m.name!r}", m.path,
                                      "give the model folders distinct names, or serve them as NAME=DIR (cookie=models/cookie/v3)")
                self.models[m.name] = m
        except ConfigError:
            self.close()
            raise
        self.default = models[0].name

    @classmethod
    def load(cls, paths: Sequence[str | Path]) -> ModelPool:
        """Load the model folders on the pool's own worker thread (:func:`load_model` each); ``NAME=DIR`` serves a
        folder under a name of its own (:func:`model_spec`)."""
        return cls(lambda: [load_model(folder, name) for name, folder in map(model_spec, paths)])

    def get(self, name: str | None) -> LoadedModel:
        """The model called ``name`` (the first one when None); KeyError names the known ones."""
        key = same_spelling(name) if name else self.default
        if key not in self.models:
            raise KeyError(f"unknown model {key!r}; known: {', '.join(self.models)}")
        return self.models[key]

    def close(self) -> None:
        """Stop the worker once the queued jobs are done."""
        self._jobs.put(None)
        self._worker.join(timeout=30)

    def _run(self, models: Sequence[LoadedModel] | Callable[[], Sequence[LoadedModel]], loaded: Future) -> None:
        try:
            loaded.set_result(models() if callable(models) else models)
        except BaseException as exc:  # noqa: BLE001 - handed to the constructor, which raises it
            loaded.set_exception(exc)
            return
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            # Whatever else is already waiting joins this batch; nothing waits for more to arrive.
            while len(batch) < MAX_BATCH:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._jobs.put(None)
                    break
                batch.append(nxt)
            by_model: dict[str, list[_Job]] = {}
            for j in batch:
                by_model.setdefault(j.model.name, []).append(j)
            for jobs in by_model.values():
                self._score(jobs)

    @classmethod
    def _score(cls, jobs: list[_Job]) -> None:
        inspector = jobs[0].model.inspector
        try:
            # The uploads were decoded by load_image (the pixel gate) on their request threads;
            # Inspector.score would check them again and warn twice of an extreme aspect.
            results = inspector.score_read([j.image for j in jobs])
            decided = [(r, inspector.decide(r, j.source)) for j, r in zip(jobs, results, strict=True)]
        except Exception as exc:  # noqa: BLE001 - any failure goes back to the requests; the worker must live on
            for j in jobs:
                j.future.set_exception(exc)
            return
        for j, (result, inspection) in zip(jobs, decided, strict=True):
            try:
                j.future.set_result((inspection, *cls._types(j.model, j.image, inspection, result)))
            except Exception as exc:  # noqa: BLE001 - as above, for this upload alone
                j.future.set_exception(exc)

    def inspect(self, model: LoadedModel, image: np.ndarray, source: str, reading_notes: Sequence[str] = ()) -> Outcome:
        """Score, locate and type ``image`` on the worker (in whatever batch it joins), then report
        and render it on the calling thread; ``reading_notes``: what reading the upload said, among the report's notes."""
        start = time.perf_counter()
        fut: Future[tuple[Inspection, list[RegionType], list[str]]] = Future()
        self._jobs.put(_Job(model, image, source, fut))
        inspection, region_types, notes = fut.result()
        said = [n for n in (model.inspector.verdict_basis,) if n]  # a view note heads the text
        report = build_report(inspection, region_types, model.analysis.taxonomy, "template", [*said, *reading_notes, *notes])
        # The record `inspect`'s reports carry (pixel threshold, how the thresholds were set, the judged pixels' digest): the
        # stored row's columns keep the image threshold alone.
        report.record = verdict_record(model.inspector, image, inspection)
        labels = [shown_type(t.defect_type, t.method, len(t.candidates)) for t in region_types]
        overlay = png_bytes(inspection_overlay(model.inspector, image, inspection, labels or None))
        # Pixel value = region index: the export cuts each region's mask from it.
        prov = model.inspector.provenance
        return Outcome(inspection, region_types, report, render_markdown(report), overlay, region_mask_png(inspection), time.perf_counter() - start,
                       prov.fitted_at if prov else None, prov.fingerprint if prov else None)

    @staticmethod
    def _types(model: LoadedModel, image: np.ndarray, inspection: Inspection, result: AnomalyResult) -> tuple[list[RegionType], list[str]]:
        """Region types and report notes the way `defectlens inspect` gets them."""
        return type_with_notes(model.analysis, image, inspection, result.grounding)


__all__ = ["MAX_BATCH", "REJECT_TYPE", "UNKNOWN_TYPE", "LoadedModel", "ModelPool", "Outcome", "load_model"]
