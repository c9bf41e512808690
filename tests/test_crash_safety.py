"""Killed, interrupted, full or read-only: what a run leaves behind, from a crash-safety probe
(2026-12-05). The old model or the new one, never none; a disk failure said in one line; a
summary that says which images it does not cover."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from defectlens import Inspector
from defectlens.cli import app
from defectlens.cli import export as export_cli
from defectlens.cli import vision as vision_cli
from defectlens.cli.progress import stop_on_terminate
from defectlens.descriptor import read_descriptor
from defectlens.errors import ModelFileError, OutputError
from defectlens.explain import gallery
from defectlens.io import atomic, outputs
from defectlens.io.atomic import atomic_directory, clean_stale_temporaries

runner = CliRunner()


def _text(result) -> str:
    return " ".join(result.output.split())


def _model(fitted_model: Path, where: Path) -> Path:
    shutil.copytree(fitted_model, where)
    return where


def test_a_model_moved_aside_by_a_killed_save_is_put_back_not_cleaned_away(fitted_model, tmp_path):
    # Killed between "model -> .model.old-X" and ".model.tmp-Y -> model", the old model was the only
    # complete copy; the next run removed it as a stale temporary and said "model is as it was".
    moved = _model(fitted_model, tmp_path / ".model.old-abcd1234")
    os.utime(moved, (0, 0))  # long stale
    with pytest.raises(ModelFileError, match=r"an interrupted save left the model before it as \.model\.old-abcd1234"):
        read_descriptor(tmp_path / "model")
    clean_stale_temporaries(tmp_path, "model")
    assert not moved.exists() and Inspector.load(tmp_path / "model").thresholds is not None


def test_a_folder_being_written_is_never_cleaned_away_whatever_its_age(tmp_path):
    # Concurrency probe 2026-12-06: copytree gave a live export's temporary folder its source's time (hours old), and a
    # second export's cleaning removed it mid-write: the first crashed with a traceback. A dead run's is still removed.
    dead = tmp_path / ".out.tmp-dead1234"
    dead.mkdir()
    os.utime(dead, (0, 0))
    with atomic_directory(tmp_path / "out", lambda p: False) as live:
        (live / "part.txt").write_text("written")
        os.utime(live, (0, 0))  # looks long stale
        assert clean_stale_temporaries(tmp_path, "out") == [] and live.is_dir()  # (the dead one went as the folder was made)
        assert not dead.exists()
    assert (tmp_path / "out" / "part.txt").read_text() == "written"


@pytest.mark.parametrize("one_step", [True, False])
def test_a_folder_is_replaced_whole_with_or_without_an_atomic_swap(tmp_path, monkeypatch, one_step):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    made: list[str] = []
    mkdtemp = atomic.tempfile.mkdtemp
    monkeypatch.setattr(atomic.tempfile, "mkdtemp", lambda **kw: made.append(kw["prefix"]) or mkdtemp(**kw))
    if not one_step:
        monkeypatch.setattr(atomic, "exchange_paths", lambda a, b: False)
    with atomic_directory(target, lambda p: True, "test folder") as tmp:
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"] and [p.name for p in target.iterdir()] == ["new.txt"]
    # Swapped in one step where the system can (Linux): no moment without the folder, no ".old".
    assert any(".old-" in prefix for prefix in made) != one_step
    # Through a link (current -> v3): the folder it names is replaced and the link kept (it had become a folder).
    link = tmp_path / "current"
    link.symlink_to(target)
    with atomic_directory(link, lambda p: True, "test folder") as tmp:
        (tmp / "newer.txt").write_text("newer")
    assert link.is_symlink() and [p.name for p in target.iterdir()] == ["newer.txt"]
    # A link to a folder not made yet: made there (it was a NotADirectoryError traceback).
    ahead = tmp_path / "next"
    ahead.symlink_to(tmp_path / "v4")
    with atomic_directory(ahead, lambda p: True, "test folder") as tmp:
        (tmp / "first.txt").write_text("first")
    assert ahead.is_symlink() and (tmp_path / "v4" / "first.txt").read_text() == "first"


def test_a_full_disk_is_one_line_and_the_old_model_stands(fitted_model, tmp_path, monkeypatch):
    import safetensors.numpy
    import safetensors.torch

    model = _model(fitted_model, tmp_path / "model")
    before = (model / "inspector.json").read_bytes()

    def full(*args, **kwargs):
        # What safetensors raises on a full disk: its own error, not an OSError.
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(safetensors.numpy, "save_file", full)
    monkeypatch.setattr(safetensors.torch, "save_file", full)
    with pytest.raises(OutputError) as info:
        Inspector.load(model).save(model)
    message = str(info.value)
    assert "could not be written (No space left on device)" in message and "free space" in message and "\n" not in message
    assert (model / "inspector.json").read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["model"]
    # A file-size limit (ulimit -f) too: it had been a traceback (interruption probe 2026-12-05).
    monkeypatch.setattr(safetensors.numpy, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EFBIG, "File too large")))
    monkeypatch.setattr(safetensors.torch, "save_file", lambda *a, **k: (_ for _ in ()).throw(OSError(errno.EFBIG, "File too large")))
    with pytest.raises(OutputError, match=r"could not be written \(File too large\).*ulimit -f"):
        Inspector.load(model).save(model)
    assert (model / "inspector.json").read_bytes() == before


def test_an_unwritable_output_folder_is_refused_before_any_image(fitted_model, synthetic_category, tmp_path, monkeypatch):
    out = tmp_path / "ro"
    out.mkdir()
    can_write = outputs.can_write
    monkeypatch.setattr(outputs, "can_write", lambda folder: folder != out and can_write(folder))
    inspected: list[int] = []
    monkeypatch.setattr(vision_cli, "inspect_and_write", lambda *a: inspected.append(1))
    result = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test"), "-o", str(out)])
    assert result.exit_code == 2 and "cannot be written (a read-only disk, no permission" in _text(result) and not inspected
    # Said once of the folder itself (automation probe 2026-12-06: "ro: ro cannot be written …, so the output folder cannot be either").
    assert f"{out}: the output folder cannot be written (a read-only disk" in _text(result) and "cannot be either" not in _text(result)


def test_a_summary_that_cannot_be_written_says_why_and_what_to_do(fitted_model, synthetic_category, tmp_path, monkeypatch):
    def full(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(gallery, "write_text_atomic", full)
    result = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test"), "-o", str(tmp_path / "out")])
    # Every image's files were written: that much is true, and the fix is space, not "close the file".
    assert result.exit_code == 2, result.output
    assert "No space left on device); the per-image results are complete — fix: free space on its disk" in _text(result)


def test_calibrate_does_not_put_its_model_back_over_a_new_fit(fitted_model, synthetic_category, tmp_path, monkeypatch):
    model = _model(fitted_model, tmp_path / "model")
    inspect_batch = Inspector.inspect_batch

    def refit_meanwhile(self, *args, **kwargs):
        # A fit saves the folder while calibrate reads its images, with the model loaded.
        Inspector.load(model).save(model)
        return inspect_batch(self, *args, **kwargs)

    monkeypatch.setattr(Inspector, "inspect_batch", refit_meanwhile)
    test = synthetic_category / "test"
    result = runner.invoke(app, ["calibrate", str(model), "--good", str(test / "good"), "--defective", str(test / "spot"), "--f1"])
    refit = read_descriptor(model)
    assert result.exit_code == 2 and "was written again while calibrate ran; nothing saved" in _text(result), result.output
    assert refit.thresholds is not None and refit.thresholds["source"] != "f1-optimal"


def test_an_interrupted_batch_summary_lists_the_images_not_reached(fitted_model, synthetic_category, tmp_path, monkeypatch):
    inspect_and_write = vision_cli.inspect_and_write
    batches: list[int] = []

    def stop_after_one(*args):
        if batches:
            raise KeyboardInterrupt
        batches.append(1)
        return inspect_and_write(*args)

    monkeypatch.setattr(vision_cli, "inspect_and_write", stop_after_one)
    monkeypatch.setattr(Inspector, "batch_size", property(lambda self: 2))
    out = tmp_path / "out"
    files = sorted((synthetic_category / "test").rglob("*.png"))
    result = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test"), "-o", str(out)])
    assert result.exit_code == 130 and "run again with --resume" in _text(result), result.output
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text(encoding="utf-8"))))
    left = [r for r in rows if "the run was interrupted" in r["report"]]
    # Every input has a row: the images done, and the others marked as not inspected.
    assert len(rows) == len(files) and len(left) == len(files) - 2
    assert f"interrupted: {len(left)} not inspected" in (out / "index.html").read_text(encoding="utf-8")
    # Resumed and interrupted again: the earlier run's results were left on purpose, done, not to be redone (scale probe
    # 2026-12-06: "run again to redo them" read as 623 stale results).
    batches.clear()
    resumed = _text(runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test"), "-o", str(out), "--resume"]))
    assert f"4 of {len(files)} image(s) done (2 of them from an earlier run)" in resumed and "redo" not in resumed, resumed
    # Finished, then run again without --resume and interrupted after one batch: the earlier results are said
    # apart, and nothing is left "to finish" (it read "8 of 8 image(s) done … run again with --resume to finish").
    monkeypatch.setattr(vision_cli, "inspect_and_write", inspect_and_write)
    assert runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test"), "-o", str(out), "--resume"]).exit_code == 0
    batches.clear()
    monkeypatch.setattr(vision_cli, "inspect_and_write", stop_after_one)
    again = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test"), "-o", str(out)])
    said = _text(again)
    assert again.exit_code == 130 and f"{len(files)} of {len(files)} image(s) done ({len(files) - 2} of them an earlier run's results " \
        "this run had not reached: run again to redo them)" in said, said
    assert "run again with --resume" not in said


def test_results_removed_during_the_run_are_not_reported_as_done(fitted_model, synthetic_category, tmp_path, monkeypatch):
    inspect_and_write = vision_cli.inspect_and_write
    out = tmp_path / "out"

    def then_remove(*args):
        outcome = inspect_and_write(*args)
        for path in out.glob("*.report.md"):
            path.unlink()  # someone clears the folder while the run goes on
        return outcome

    monkeypatch.setattr(vision_cli, "inspect_and_write", then_remove)
    result = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test"), "-o", str(out)])
    assert result.exit_code == 3 and "were removed from" in _text(result), result.output
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text(encoding="utf-8"))))
    assert rows and all(r["verdict"] == gallery.SKIPPED_VERDICT for r in rows)


def test_ctrl_c_during_export_says_nothing_was_written(fitted_model, tmp_path, monkeypatch):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(export_cli, "export_model", interrupted)
    result = runner.invoke(app, ["export", str(fitted_model), "-o", str(tmp_path / "e")])
    assert result.exit_code == 130 and "interrupted: nothing exported" in _text(result)


def test_sigterm_stops_a_command_as_ctrl_c_does():
    # docker stop, systemd and a cancelled CI job send SIGTERM: the command died with no message.
    previous = signal.getsignal(signal.SIGTERM)
    try:
        stop_on_terminate()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes, at once
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_hang_up_stops_a_command_as_ctrl_c_does_unless_started_under_nohup():
    # Pipelines probe 2026-12-06: an ssh session dropped (SIGHUP) killed `inspect` with status 129, no summary, temporaries left.
    previous = signal.getsignal(signal.SIGHUP)
    try:
        stop_on_terminate()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(1000):
                pass
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts a command: it is to go on
        stop_on_terminate()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_signal_while_python_tears_down_keeps_the_commands_status(tmp_path):
    # Pipelines probe 2026-12-06: a SIGTERM in the last second of a finished run still ended it with status 143: Python puts
    # back the default handlers before the end of its teardown (PyTorch's), where the signal came. An object cleared then stands in.
    code = ("import os, signal, sys, time\nfrom defectlens._entry import main\nsys.argv = ['defectlens', '--version']\n"
            "class Late:\n    def __del__(self):\n        os.kill(os.getpid(), signal.SIGTERM)\n        time.sleep(0.5)\n"
            "late = Late()\ntry:\n    main()\nexcept SystemExit:\n    pass\nsys.exit(3)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 3, (run.returncode, run.stderr)
    # `--json /dev/stdout | true`: the reader gone is no failure of the command, as for `--json -` (it had been status 2).
    code = ("import os\nread, write = os.pipe()\nos.close(read)\nos.dup2(write, 1)\nfrom defectlens.io.atomic import write_text_atomic\n"
            "write_text_atomic('/dev/stdout', 'x' * 200000, named=True)\nprint('more')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert run.returncode == 0 and run.stderr == "", run.stderr


def test_ctrl_c_while_the_command_loads_is_one_line(monkeypatch, capsys):
    # PyTorch takes seconds to load: a Ctrl-C then printed a 20-line import traceback.
    import builtins

    from defectlens._entry import main

    real_import = builtins.__import__

    def interrupted_import(name, *args, **kwargs):
        if name == "defectlens.cli":
            raise KeyboardInterrupt
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", interrupted_import)
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 130 and capsys.readouterr().err == "interrupted: stopped while loading, nothing done by this run\n"


@pytest.mark.slow  # a fresh interpreter's imports (6 s on the shared cores)
def test_the_package_loads_without_pytorch_until_the_inspector_is_used():
    import subprocess
    import sys

    code = "import sys, defectlens, defectlens.io; assert 'torch' not in sys.modules; defectlens.Inspector; assert 'torch' in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
    # Nor NumPy until a result type is asked for: a Ctrl-C inside its import, before the entry point could take it,
    # had read "Importing the numpy C-extensions failed ... bad install" (interruption probe 2026-12-05).
    code = "import sys, defectlens; assert 'numpy' not in sys.modules; defectlens.Inspection; assert 'numpy' in sys.modules"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).returncode == 0
    import defectlens

    # Tab completion offers the public names, those loaded on first use included, and not the module's imports.
    assert dir(defectlens) == sorted(defectlens.__all__) and "Inspection" in dir(defectlens)


def test_a_file_name_near_the_limit_is_written(tmp_path):
    # The temporary's dot and random suffix took a 239-character name past 255 bytes:
    # "File name too long", and "free the output folder's names" could not help.
    target = tmp_path / ("b" * 235 + ".report.json")
    atomic.write_text_atomic(target, "{}")
    assert target.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == [target.name]


@pytest.mark.parametrize("one_step", [True, False])
def test_a_folder_name_near_the_limit_is_written_replaced_and_its_leftovers_found(tmp_path, monkeypatch, one_step):
    # Deployment probe 2026-12-06: `export -o NAME` with NAME of 242 to 255 bytes failed ("File name too long", then "pass a
    # folder you can write to"): the temporary folder's ".NAME.tmp-XXXXXXXX" passed 255 bytes. Its leftovers must match too.
    if not one_step:
        monkeypatch.setattr(atomic, "exchange_paths", lambda a, b: False)
    target = tmp_path / ("é" * 120 + "xyz")  # 243 bytes
    for text in ("first", "second"):
        with atomic_directory(target, lambda p: True, "test folder") as tmp:
            (tmp / "part.txt").write_text(text)
    assert [p.name for p in tmp_path.iterdir()] == [target.name] and (target / "part.txt").read_text() == "second"
    short = atomic._short(target.name)
    stale = tmp_path / f".{short}.tmp-dead1234"
    stale.mkdir()
    os.utime(stale, (0, 0))
    shutil.rmtree(target)
    moved = tmp_path / f".{short}.old-abcd1234"  # a killed two-step replace: the only copy, under the cut name
    moved.mkdir()
    (moved / "part.txt").write_text("kept")
    # Another model whose name starts with the same 200 bytes (the second regression probe: its only copy, moved aside by a
    # killed save, was taken for this one's, renamed to it and replaced by the next save).
    other = tmp_path / ("é" * 120 + "other")
    assert atomic._short(other.name) != short
    theirs = tmp_path / f".{atomic._short(other.name)}.old-efgh5678"
    theirs.mkdir()
    (theirs / "part.txt").write_text("the other model's only copy")
    assert clean_stale_temporaries(tmp_path, target.name) == [stale]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, theirs.name]) and (target / "part.txt").read_text() == "kept"
    os.utime(theirs, (0, 0))  # long stale: `inspect -o` into this folder had removed it (third regression probe)
    assert clean_stale_temporaries(tmp_path) == [] and theirs.is_dir()  # its whole name is not in it: left for its own save
    clean_stale_temporaries(tmp_path, other.name)
    assert (other / "part.txt").read_text() == "the other model's only copy"


def test_a_folder_one_may_write_in_but_not_list_takes_a_save(tmp_path, monkeypatch):
    # Regression probe 2026-12-06: `fit -o dropbox/model` with dropbox at mode 0311 (as a user, not root) ended in a
    # PermissionError traceback from the clean-up's listing, before the save began. Root lists anything: the listing is refused here.
    iterdir = Path.iterdir

    def unlistable(self: Path):  # type: ignore[no-untyped-def]
        if self == tmp_path:
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return iterdir(self)

    opened = os.open

    def unreadable(path, flags, *args, **kwargs):  # type: ignore[no-untyped-def]
        if Path(path) == tmp_path and flags == os.O_RDONLY:  # opened to sync its entries (the second probe: "not written" after the save)
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return opened(path, flags, *args, **kwargs)  # shutil.rmtree opens with dir_fd=

    monkeypatch.setattr(Path, "iterdir", unlistable)
    monkeypatch.setattr(atomic.os, "open", unreadable)
    for text in ("saved", "saved again"):
        with atomic_directory(tmp_path / "model", lambda p: True, "test folder") as tmp:
            (tmp / "part.txt").write_text(text)
    assert (tmp_path / "model" / "part.txt").read_text() == "saved again" and clean_stale_temporaries(tmp_path) == []


def test_identical_model_files_are_byte_identical(tmp_path):
    # Reproducibility probe 2026-12-05: safetensors wrote its header's metadata in an order that
    # changed from run to run, so two identical fits had files with different checksums.
    import hashlib
    import json
    import struct

    import numpy as np

    from defectlens.io.atomic import write_model_files

    tensors = {"bank": np.arange(12, dtype=np.float32).reshape(3, 4), "centres": np.ones((2, 4), np.float32)}
    digests = set()
    for i in range(8):
        folder = write_model_files(tmp_path / f"m{i}", "t.safetensors", tensors, "c.json", {"k": 1}, "defectlens.test", 3)
        raw = (folder / "t.safetensors").read_bytes()
        digests.add(hashlib.sha256(raw).hexdigest())
        (length,) = struct.unpack("<Q", raw[:8])
        assert list(json.loads(raw[8 : 8 + length])["__metadata__"]) == ["format", "version"]
    assert len(digests) == 1
    from safetensors.numpy import load_file

    assert np.array_equal(load_file(str(folder / "t.safetensors"))["bank"], tensors["bank"])


def test_progress_written_to_a_log_is_a_line_now_and_then(monkeypatch, capsys):
    # Scale probe 2026-12-05: with stderr not a terminal (nohup, CI, systemd) the bar was drawn once,
    # at the end: a 3 000-image run said nothing for two minutes.
    from defectlens.cli import progress

    monkeypatch.setattr(progress, "LOG_EVERY_SECONDS", 0.0)
    with progress.progress_bar("inspecting", 3) as advance:
        for _ in range(3):
            advance(1)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("inspecting: ")]
    assert [line.split(" in ")[0] for line in lines] == ["inspecting: 1/3", "inspecting: 2/3"], lines
    assert "s left" in lines[0]
    # FORCE_COLOR=1 with standard error in a file (pipelines probe 2026-12-06): taken for a terminal, the bar was redrawn ten
    # times a second into the log, and these lines never came.
    monkeypatch.setattr(progress.console, "_force_terminal", True)
    assert progress.console.is_terminal
    with progress.progress_bar("inspecting", 3) as advance:
        for _ in range(3):
            time.sleep(0.3)
            progress.console.print("a note while it runs")  # the live bar was drawn again after each (a second probe)
            advance(1)
    err = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", capsys.readouterr().err)  # the cursor hidden and shown, as on a terminal
    assert [line.split(" in ")[0] for line in err.splitlines() if line.startswith("inspecting: ")] == ["inspecting: 1/3", "inspecting: 2/3"]
    assert err.count("inspecting ━") == 1 and err.count("a note while it runs") == 3, err  # the bar drawn once, as it ends


def test_an_interrupt_in_the_moment_after_the_swap_says_the_new_model_was_saved(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Hostile probe 2026-12-05: Ctrl-C while the old folder was being deleted said "no model written; it is as
    # it was" (fit) and "the model is as it was" (calibrate) over the new model, in 5 of 5 tries.
    model = tmp_path / "m"
    shutil.copytree(fitted_model, model)
    old = atomic.folder_identity(model)

    swap = atomic.exchange_paths

    def swap_then_interrupt(a, b):  # the new folder in place, the old one not yet deleted
        swap(a, b)
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic, "exchange_paths", swap_then_interrupt)
    result = runner.invoke(app, ["fit", str(synthetic_category), "-o", str(model), "--image-size", "64", "--extra-neighbourhood", "0"])
    assert result.exit_code == 130 and f"the new model was saved in {model} just before the interrupt" in _text(result), result.output
    assert atomic.folder_identity(model) != old and Inspector.load(model).thresholds is not None
    good, bad = str(synthetic_category / "test" / "good"), str(synthetic_category / "test" / "spot")
    result = runner.invoke(app, ["calibrate", str(model), "--good", good, "--defective", bad, "--plot", str(tmp_path / "r.png")])
    assert result.exit_code == 130 and "the thresholds are saved, the ROC plot not written" in _text(result), result.output
    assert Inspector.load(model).thresholds.source.startswith("false-alarm target")


def test_resume_redoes_images_whose_files_a_power_cut_left_empty_or_cut_short(fitted_model, synthetic_category, tmp_path):
    # Hostile probe 2026-12-05: an empty report and a truncated mask counted as "already done".
    spot = synthetic_category / "test" / "spot"
    out = tmp_path / "out"
    assert runner.invoke(app, ["inspect", str(fitted_model), str(spot), "-o", str(out)]).exit_code == 0
    (out / "000.report.md").write_bytes(b"")
    mask = (out / "001.mask.png").read_bytes()
    (out / "001.mask.png").write_bytes(mask[: len(mask) // 2])
    result = runner.invoke(app, ["inspect", str(fitted_model), str(spot), "-o", str(out), "--resume"])
    assert result.exit_code == 0 and "2 image(s) already done, 2 to inspect" in _text(result), result.output
    assert (out / "000.report.md").stat().st_size > 0 and (out / "001.mask.png").read_bytes() == mask


def test_a_run_cut_short_while_it_replaces_another_images_result_leaves_no_mixed_pair(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Interruption probe 2026-12-05: killed while replacing an earlier result of another image under the same name,
    # a run left that result's JSON beside the new image's overlay and report, and --resume took the pair as done.
    from defectlens.engine import local

    spot, good = synthetic_category / "test" / "spot", synthetic_category / "test" / "good"
    out = tmp_path / "out"
    assert runner.invoke(app, ["inspect", str(fitted_model), str(spot), "-o", str(out)]).exit_code == 0
    stranger = tmp_path / "lot"
    stranger.mkdir()
    shutil.copyfile(next(iter(sorted(good.glob("*.png")))), stranger / "000.png")  # a good part under a crack's name

    def cut_short(*args, **kwargs):
        raise OSError(errno.EIO, "cut short")  # after its report files, before its overlay and JSON

    import json

    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("000.")}
    monkeypatch.setattr(local, "write_inspection", cut_short)
    failed = runner.invoke(app, ["inspect", str(fitted_model), str(stranger), "-o", str(out)])
    monkeypatch.undo()
    # The image's files are one unit: none of the new image's is there, and the earlier result stands whole, JSON, report
    # and overlay alike (concurrency probe 2026-12-06: a failed re-write on a full disk had removed the earlier finished
    # JSON and written none). Nothing is left under a temporary name.
    assert "its earlier results stay as they were" in _text(failed)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("000.")} == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    done = json.loads((out / "000.json").read_text())
    report = json.loads((out / "000.report.json").read_text())
    assert done["source"].endswith("spot/000.png") and report["verdict"] == ("defective" if done["is_defective"] else "good")
    resumed = runner.invoke(app, ["inspect", str(fitted_model), str(spot), "-o", str(out), "--resume"])
    n = len(list(spot.glob("*.png")))
    assert resumed.exit_code == 0 and f"{n} image(s) already done" in _text(resumed), resumed.output


def test_a_rename_that_fails_puts_the_earlier_result_back_whole(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Regression probe 2026-12-06: an immutable mask file (or a folder where one goes) failed the unit's renames midway:
    # the earlier JSON was gone and its report and overlay replaced, its mask not. Now what was replaced is put back.
    import json

    spot = synthetic_category / "test" / "spot"
    out = tmp_path / "out"
    assert runner.invoke(app, ["inspect", str(fitted_model), str(spot), "-o", str(out)]).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("000.")}
    for p in out.iterdir():
        os.utime(p, (p.stat().st_mtime - 3600,) * 2)  # an hour-old earlier run
    times = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name.startswith("000.")}
    real_replace = atomic.os.replace
    refused: list[str] = []

    def refuse_the_mask(src, dst, *args, **kwargs):
        if str(dst).endswith("000.mask.png") and not refused:  # the new mask put in place: refused once
            refused.append(str(src))
            # Another run starting on the folder meanwhile cleans what looks like dead runs' temporaries: the files moved
            # aside, which keep the earlier run's time, had been taken for such and lost (regression probe 2026-12-06).
            atomic.clean_stale_temporaries(out)
            raise PermissionError(1, "Operation not permitted", str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", refuse_the_mask)
    failed = runner.invoke(app, ["inspect", str(fitted_model), str(spot), "-o", str(out)])  # run again, not resumed
    monkeypatch.undo()
    assert failed.exit_code == 3 and "its earlier results stay as they were" in _text(failed), failed.output
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("000.")} == before
    # ... with their times too ("as they were"; a resume reads a result's time to tell an earlier run's).
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name.startswith("000.")} == times
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # The summary and gallery list it as it stands on disk, an earlier run's result (they had left it out, as if gone).
    rows = list(csv.DictReader(io.StringIO((out / "summary.csv").read_text(encoding="utf-8"))))
    (row,) = [r for r in rows if r["output"] == "000"]
    assert row["verdict"] != "skipped" and row["report"].startswith("WARNING: an earlier run's result: not inspected again by this run")
    assert json.loads((out / "000.json").read_text())["source"].endswith("spot/000.png")
    # An earlier file that cannot be moved aside (immutable): the message names it, not a hidden temporary's name.
    def refuse_moving_the_report(src, dst, *args, **kwargs):
        if str(src).endswith("000.report.md") and str(dst).endswith(".tmp"):
            raise PermissionError(1, "Operation not permitted", str(src), None, str(dst))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(atomic.os, "replace", refuse_moving_the_report)
    again = runner.invoke(app, ["inspect", str(fitted_model), str(spot), "-o", str(out)])
    monkeypatch.undo()
    said = _text(again)
    assert f"results could not be written to {out / '000.report.md'} (Operation not permitted)" in said, said
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("000.")} == before

    # A Ctrl-C arriving as an earlier file's move aside returns (interruption probe 2026-12-06: that file was never put back,
    # its JSON saying the result done).
    def interrupt_after_moving_the_mask(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        if str(src).endswith("000.mask.png") and str(dst).endswith(".tmp"):
            raise KeyboardInterrupt

    monkeypatch.setattr(atomic.os, "replace", interrupt_after_moving_the_mask)
    stopped = runner.invoke(app, ["inspect", str(fitted_model), str(spot), "-o", str(out)])
    monkeypatch.undo()
    assert stopped.exit_code == 130, stopped.output
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.name.startswith("000.")} == before
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]
    # ... and as a first result's JSON is put in place: no JSON saying "done" over files taken back.
    def interrupt_after_placing_the_json(src, dst, *args, **kwargs):
        real_replace(src, dst, *args, **kwargs)
        if str(dst).endswith("000.json"):
            raise KeyboardInterrupt

    fresh = tmp_path / "fresh"
    monkeypatch.setattr(atomic.os, "replace", interrupt_after_placing_the_json)
    stopped = runner.invoke(app, ["inspect", str(fitted_model), str(spot), "-o", str(fresh)])
    monkeypatch.undo()
    assert stopped.exit_code == 130, stopped.output
    assert not (fresh / "000.json").exists() and not [p for p in fresh.iterdir() if p.name.startswith("000.")]


def test_a_fit_does_not_save_over_a_model_another_run_saved_while_it_ran(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Interruption probe 2026-12-05: two fits into one folder both said "fitted", the later silently replacing the other.
    model = tmp_path / "model"
    real_fit = vision_cli.Inspector.fit

    def other_run_saves_meanwhile(*args, **kwargs):
        fitted = real_fit(*args, **kwargs)
        Inspector.load(fitted_model).save(model)  # the other run finishes first
        return fitted

    monkeypatch.setattr(vision_cli.Inspector, "fit", other_run_saves_meanwhile)
    result = runner.invoke(app, ["fit", str(synthetic_category), "-o", str(model), "--image-size", "64", "--extra-neighbourhood", "0"])
    assert result.exit_code == 2 and "another run saved a model here while this fit ran (memory-bank model" in _text(result), result.output
    assert read_descriptor(model).provenance.fitted_at == read_descriptor(fitted_model).provenance.fitted_at  # the other run's stands


def test_a_fit_over_a_model_a_killed_save_moved_aside_puts_it_back_and_saves_over_it(fitted_model, synthetic_category, tmp_path):
    # Regression probe 2026-12-05: put back by the clean-up after fit had noted no folder there, the old model read as
    # "another run saved a model here while this fit ran", and the finished fit was not saved.
    moved = _model(fitted_model, tmp_path / ".model.old-abcd1234")
    os.utime(moved, (0, 0))
    result = runner.invoke(app, ["fit", str(synthetic_category), "-o", str(tmp_path / "model"), "--image-size", "64",
                                 "--extra-neighbourhood", "0", "--seed", "3"])
    assert result.exit_code == 0, result.output
    assert "another run" not in _text(result) and read_descriptor(tmp_path / "model").settings["seed"] == 3


def test_a_ctrl_c_no_command_caught_is_said_in_one_line(monkeypatch, capsys):
    # Regression probe 2026-12-05: a Ctrl-C while typer built the command line was a traceback, and one between a
    # command's steps ended with status 130 and not a word (typer turns it into that exit).
    import defectlens.cli as cli_module
    from defectlens import _entry
    from defectlens.cli import progress

    def starting():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_module, "app", starting)
    with pytest.raises(SystemExit) as info:
        _entry.main()
    assert info.value.code == 130 and capsys.readouterr().err == "interrupted: stopped while starting, nothing done by this run\n"

    def silent():
        raise SystemExit(130)

    monkeypatch.setattr(cli_module, "app", silent)
    monkeypatch.setattr(progress, "INTERRUPT_SAID", [])
    with pytest.raises(SystemExit):
        _entry.main()
    assert capsys.readouterr().err == f"interrupted: stopped; {_entry.UNSAID_INTERRUPT}\n"
    progress.INTERRUPT_SAID.append("said by the command")
    with pytest.raises(SystemExit):
        _entry.main()
    assert capsys.readouterr().err == ""  # the command said it already


def test_a_link_that_loops_or_leads_nowhere_is_refused_before_any_work(fitted_model, synthetic_category, tmp_path):
    # Regression probe round 2: a fit into a looping link ran to its end, then crashed ("Symlink loop"); inspect -o
    # through a link to a folder not made yet crashed with "File exists".
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    fitted = runner.invoke(app, ["fit", str(synthetic_category), "-o", str(loop), "--image-size", "64"])
    assert fitted.exit_code == 2 and "a link that loops back on itself" in _text(fitted) and "checking" not in _text(fitted), fitted.output
    below = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test" / "spot"), "-o", str(loop / "sub")])
    assert below.exit_code == 2 and "lies below, a link that loops back on itself" in _text(below), below.output  # round 4: a traceback
    exported = runner.invoke(app, ["export", str(fitted_model), "-o", str(loop)])
    assert exported.exit_code == 2 and "a link that loops back on itself" in _text(exported), exported.output  # round 3: a traceback
    # A file to write there: calibrate's ROC plot below the link failed after the whole run, and one at it replaced the link.
    model = tmp_path / "model"
    shutil.copytree(fitted_model, model)
    test = synthetic_category / "test"
    for plot in (loop / "roc.png", loop):
        calibrated = runner.invoke(app, ["calibrate", str(model), "--good", str(test / "good"), "--defective", str(test / "spot"),
                                         "--plot", str(plot)])
        assert calibrated.exit_code == 2 and "a link that loops back on itself" in _text(calibrated), calibrated.output
        assert "image threshold" not in _text(calibrated) and loop.is_symlink()
    ahead = tmp_path / "out"
    ahead.symlink_to(tmp_path / "not-yet")
    inspected = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test" / "spot"), "-o", str(ahead)])
    assert inspected.exit_code == 2 and "is a link to a folder not made yet" in _text(inspected), inspected.output
    # Below such a link, a name longer than a file system holds, a ~ the shell left as it is (it had made a folder named
    # "~"): one line each, for a folder, a file and a model (regression probe 2026-12-06: the first two were tracebacks).
    spot = str(synthetic_category / "test" / "spot")
    for given, said in ((ahead / "sub", "lies below"), (tmp_path / ("a" * 300) / "x", "is 300 bytes long"), (Path("~/dl-out"), "a ~ the shell")):
        for args in (["inspect", str(fitted_model), spot, "-o", str(given)], ["fit", str(synthetic_category), "-o", str(given)],
                     ["evaluate", str(fitted_model), str(synthetic_category), "--json", str(given)],
                     ["export", str(fitted_model), "-o", str(given)]):
            refused = runner.invoke(app, args)
            assert refused.exit_code == 2 and said in _text(refused) and "Traceback" not in refused.output, (args, refused.output)
    assert not Path("~").exists() and not (tmp_path / "not-yet").exists()
    # A name the shell leaves as it is too ("~lot", no such user) is a folder's name: written there (regression probe).
    named = runner.invoke(app, ["inspect", str(fitted_model), spot, "-o", str(tmp_path / "~no-such-user-lot"), "--overlay", "none"])
    assert named.exit_code == 0 and (tmp_path / "~no-such-user-lot" / "summary.csv").is_file(), named.output


def test_a_file_is_writable_while_it_is_written_under_any_umask(tmp_path):
    # Regression probe 2026-12-06: under umask 0222 the temporary file was made 0400, and its writer, opening it by name,
    # was refused: no result of any command could be written (root, who is never refused, did not see it).
    import stat

    from defectlens.io.atomic import atomic_write, write_text_atomic

    before = os.umask(0o222)
    try:
        with atomic_write(tmp_path / "a.txt") as tmp:
            assert stat.S_IMODE(tmp.stat().st_mode) & 0o200
        write_text_atomic(tmp_path / "b.txt", "kept")
    finally:
        os.umask(before)
    assert (tmp_path / "b.txt").read_text() == "kept" and stat.S_IMODE((tmp_path / "b.txt").stat().st_mode) == 0o444


def test_evaluate_says_in_one_line_that_its_metrics_file_could_not_be_written(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Interruption probe 2026-12-06: a disk that filled while evaluate ran, and --json /dev/full, ended in a traceback (exit 1).
    full = runner.invoke(app, ["evaluate", str(fitted_model), str(synthetic_category), "--json", "/dev/full"])
    assert full.exit_code == 2 and "/dev/full: could not be written (No space left on device)" in _text(full), full.output
    assert "Traceback" not in full.output

    def disk_fills(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    from defectlens.cli import evaluate as evaluate_cli

    monkeypatch.setattr(evaluate_cli, "write_json_atomic", disk_fills)
    out = tmp_path / "m.json"
    filled = runner.invoke(app, ["evaluate", str(fitted_model), str(synthetic_category), "--json", str(out)])
    said = _text(filled)
    assert filled.exit_code == 2 and f"{out}: could not be written (No space left on device); the metrics are printed above" in said, said
    assert "image_auroc" in said.lower().replace(" ", "_") or "AUROC" in said


def test_json_is_written_one_way_everywhere(tmp_path):
    """Files and standard output hold JSON alike: letters as themselves, a name's undecodable bytes as escapes JSON keeps
    (code review 2026-12-06: `evaluate --json -` and the review export's manifest had escaped every letter beyond ASCII)."""
    from defectlens.io import json_text, write_json_atomic

    assert json_text({"type": "Ölfleck"}, indent=None) == '{"type": "Ölfleck"}'
    odd = os.fsdecode(b"caf\xe9.png")  # a Latin-1 file name on a UTF-8 system
    assert json.loads(json_text({"file": odd})) == {"file": odd} and "\\udce9" in json_text({"file": odd})
    write_json_atomic(tmp_path / "x.json", {"type": "Ölfleck"})
    assert (tmp_path / "x.json").read_text(encoding="utf-8") == json_text({"type": "Ölfleck"}) + "\n"


def test_an_output_folder_too_deep_for_its_files_names_is_refused_first(tmp_path):
    # Windows-inputs probe 2026-12-06: an -o path near the system's 4096-byte limit ended in a traceback (File name too long:
    # …/summary.csv), or a little shorter in "made with mode 0755 … (umask 0022?)".
    from defectlens.errors import OutputError
    from defectlens.io.outputs import require_room_for_names

    deep = tmp_path.joinpath(*["x" * 99] * (4096 // 100))  # not made: the limit is read from the nearest folder that is
    with pytest.raises(OutputError, match=r"a file's name in it \(up to 255 bytes\) would pass the system's limit of 4096 bytes"):
        require_room_for_names(deep, "output folder")
    require_room_for_names(tmp_path / "out", "output folder")
    result = runner.invoke(app, ["inspect", str(tmp_path / "no-model"), str(tmp_path), "-o", str(deep)])
    assert result.exit_code == 2 and "pass a shorter path for the output folder" in _text(result), result.output


def test_a_save_waits_for_another_runs_check_and_save_in_the_same_folder(tmp_path):
    # Concurrency probe 2026-12-06: two fits into one folder both passed "was it written meanwhile?" and both said
    # "fitted → M", the later one's model replacing the other's. Held across the check and the save, the second waits.
    import threading
    import time

    from defectlens.io.outputs import saving_in

    order: list[str] = []

    def second() -> None:
        with saving_in(tmp_path / "model"):
            order.append("second saves")

    with saving_in(tmp_path / "model"):
        waiting = threading.Thread(target=second)
        waiting.start()
        time.sleep(0.3)
        order.append("first saved")
    waiting.join(timeout=10)
    assert order == ["first saved", "second saves"]
    with saving_in(tmp_path / "other" / "deep" / "model"):  # a folder not made yet: its nearest existing one is held
        pass


def test_serve_stopped_while_it_loads_ends_as_a_stop(monkeypatch):
    # Proxy probe 2026-12-07: `systemctl stop` while `serve` loaded its models ended with status 130, a failure to the
    # service manager, where the help says a stop (Ctrl-C or SIGTERM) is status 0; other commands keep 130.
    from defectlens._entry import stopped_status

    monkeypatch.setattr(sys, "argv", ["defectlens", "serve", "models/cookie"])
    assert stopped_status() == 0
    monkeypatch.setattr(sys, "argv", ["defectlens", "inspect", "models/cookie", "a.png", "-o", "out"])
    assert stopped_status() == 130


def test_a_machine_short_of_memory_fails_the_image_not_the_batch_and_a_command_in_one_line(fitted_model, synthetic_category, tmp_path,
                                                                                          monkeypatch):
    # Resource probe 2026-12-07: one 64-megapixel image under a memory limit ended the whole `inspect` in a 144-line
    # traceback with nothing written, and `fit` in 216 lines. Regression probe of 0.3.16: the retry lived in `inspect` alone,
    # so one such image ended a whole `fit` or `evaluate` (0.3.15 had skipped it), and a shortage while its regions were typed
    # ended `inspect` with its summary unwritten.
    import weakref

    import defectlens.engine.local as local_engine
    import defectlens.inspector as inspector_module

    decoded = inspector_module.decoded_pixels
    scored = Inspector.score_read

    class Decoded:  # stands for the failed batch's decoded images
        pass

    failed_batches: list[weakref.ref] = []

    def let_go() -> None:
        # Each image alone once the batch failed, its images let go (regression probe 2026-12-07: retried within the except
        # block, whose traceback held them, every image had failed too).
        assert all(held() is None for held in failed_batches), "the failed batch's images are still held"

    def short_of_memory_for_one(path, *args, **kwargs):
        let_go()
        if Path(path).name == "001.png":
            held = Decoded()
            failed_batches.append(weakref.ref(held))
            raise MemoryError("Unable to allocate 238. MiB for an array with shape (7900, 7900, 4)")
        return decoded(path, *args, **kwargs)

    def short_of_memory_for_two(self, images, *args, **kwargs):
        let_go()
        if len(images) > 3:  # a batch the machine cannot score at once, its images one at a time it can
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 GB")
        return scored(self, images, *args, **kwargs)

    import defectlens.io.dataset as dataset_module

    read = dataset_module.load_image

    def digest_short_of_memory(path, *args, **kwargs):  # the copy checks read each picture first (regression probe 2026-12-07)
        if Path(path).name == "001.png":
            raise MemoryError("Unable to allocate 238. MiB")
        return read(path, *args, **kwargs)

    monkeypatch.setattr(dataset_module, "load_image", digest_short_of_memory)
    dataset_module._digest_of.cache_clear()
    monkeypatch.setattr(inspector_module, "decoded_pixels", short_of_memory_for_one)
    monkeypatch.setattr(Inspector, "score_read", short_of_memory_for_two)
    out = tmp_path / "out"
    result = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test" / "spot"), "-o", str(out)])
    said = _text(result)
    assert result.exit_code == 3 and "Traceback" not in said, result.output
    assert sorted(p.name for p in out.glob("*.report.json")) == ["000.report.json", "002.report.json", "003.report.json"]
    assert "001.png: not inspected, this machine ran out of memory — fix: give it less at once" in said and "then --resume" in said, said
    rows = {r["file"]: r for r in csv.DictReader(io.StringIO((out / "summary.csv").read_text(encoding="utf-8")))}
    assert [Path(name).name for name, r in rows.items() if r["verdict"] == "skipped"] == ["001.png"], rows

    # evaluate goes on past the image (its metrics from the rest) and lists it.
    evaluated = runner.invoke(app, ["evaluate", str(fitted_model), str(synthetic_category), "--json", str(tmp_path / "eval.json")])
    said = _text(evaluated)
    assert evaluated.exit_code == 3 and "Traceback" not in said, evaluated.output
    assert "001.png: not inspected, this machine ran out of memory" in said
    metrics = json.loads((tmp_path / "eval.json").read_text())
    assert (metrics["n_good"], metrics["n_defective"]) == (3, 3) and len(metrics["failures"]) == 2  # good/ and spot/ have a 001.png

    # calibrate too, which had scored its batches with no retry (regression probe 2026-12-07).
    model = tmp_path / "calibrated"
    shutil.copytree(fitted_model, model)
    calibrated = runner.invoke(app, ["calibrate", str(model), "--good", str(synthetic_category / "test" / "good"),
                                     "--defective", str(synthetic_category / "test" / "spot")])
    said = _text(calibrated)
    assert calibrated.exit_code == 3 and "Traceback" not in said and "001.png: not inspected, this machine ran out of memory" in said, \
        calibrated.output

    # fit leaves the training image out, listed.
    fitted = runner.invoke(app, ["fit", str(synthetic_category), "-o", str(tmp_path / "model"), "--image-size", "128"])
    said = _text(fitted)
    assert fitted.exit_code == 3 and "Traceback" not in said, fitted.output
    assert "001.png: not read, this machine ran out of memory — fix: give it less at once" in said
    assert read_descriptor(tmp_path / "model").fit_summary["n_images"] == 11

    # A shortage once the image is scored (its regions typed, its overlay drawn): that image fails, the run goes on and its
    # summary is written.
    monkeypatch.setattr(inspector_module, "decoded_pixels", decoded)
    analysed = local_engine.analyse

    def short_of_memory_typing(analysis, image, inspection, output, name, *args, **kwargs):
        if name.startswith("002"):
            raise MemoryError("Unable to allocate 1.39 GiB for an array with shape (7900, 7900, 3) and data type float64")
        return analysed(analysis, image, inspection, output, name, *args, **kwargs)

    monkeypatch.setattr(local_engine, "analyse", short_of_memory_typing)
    out = tmp_path / "typed"
    result = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test" / "spot"), "-o", str(out)])
    said = _text(result)
    assert result.exit_code == 3 and "Traceback" not in said, result.output
    assert "002.png: inspected, but its results were not written, this machine ran out of memory — fix:" in said and "then --resume" in said, said
    assert sorted(p.name for p in out.glob("*.report.json")) == ["000.report.json", "001.report.json", "003.report.json"]
    assert not list(out.glob("002*")) and not list(out.glob(".*.tmp"))
    rows = {Path(r["file"]).name: r["verdict"] for r in csv.DictReader(io.StringIO((out / "summary.csv").read_text(encoding="utf-8")))}
    assert rows["002.png"] == "skipped" and len(rows) == 4, rows

    # evaluate --types-k: typing one image short of memory leaves it out of the type figures, listed; the detection metrics stand
    # (regression probe 2026-12-07: the run ended, its metrics lost).
    import defectlens.cli.evaluate as evaluate_cli

    typed = evaluate_cli.type_with_notes

    def typing_short_of_memory(analysis, image, inspection, *args, **kwargs):
        if Path(inspection.source).name == "002.png":
            raise MemoryError("Unable to allocate 58.0 MiB for an array with shape (7600, 8000) and data type bool")
        return typed(analysis, image, inspection, *args, **kwargs)

    monkeypatch.setattr(evaluate_cli, "type_with_notes", typing_short_of_memory)
    typed_run = runner.invoke(app, ["evaluate", str(fitted_model), str(synthetic_category), "--types-k", "1", "--json",
                                    str(tmp_path / "typed.json")])
    said = _text(typed_run)
    assert typed_run.exit_code == 3 and "002.png: not typed, this machine ran out of memory" in said, typed_run.output
    figures = json.loads((tmp_path / "typed.json").read_text())
    assert figures["image_auroc"] is not None and figures["types"]["n_images"] == 2, figures["types"]  # 3 flagged, 1 an example

    # The command's own entry, its command line standing in for one that runs short; one process for the three.
    code = ("import sys\n"
            "import defectlens.cli as cli\n"
            "from defectlens._entry import main\n"
            "for raised in (RuntimeError(\"[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory\"),\n"
            "               OSError(24, 'Too many open files'), RuntimeError('a bug'),\n"
            "               ImportError('libonnxruntime.so.1: failed to map segment from shared object')):\n"
            "    def app(raised=raised):\n"
            "        raise raised\n"
            "    cli.app = app\n"
            "    try:\n"
            "        main()\n"
            "    except SystemExit as exc:\n"
            "        print('status', exc.code, file=sys.stderr)\n"
            "    except RuntimeError as exc:\n"
            "        print('raised', exc, file=sys.stderr)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.stderr.splitlines() == [
        "error: this machine ran out of memory ([enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory) — fix: "
        "give it less at once (fit: --max-images or a smaller --image-size; inspect and evaluate: fewer or smaller images), or run it "
        "where more memory is free", "status 2",
        "error: this machine ran out of open files ([Errno 24] Too many open files) — fix: raise the limit of open files (ulimit -n; "
        "the service: its unit's LimitNOFILE) and run it again", "status 2",
        "raised a bug",  # anything else as it was
        # A library's shared object not mapped for want of memory (regression probe 2026-12-07: a 64-line traceback).
        "error: this machine ran out of memory (libonnxruntime.so.1: failed to map segment from shared object) — fix: give it less at "
        "once (fit: --max-images or a smaller --image-size; inspect and evaluate: fewer or smaller images), or run it where more "
        "memory is free", "status 2",
    ], run.stderr


def test_a_disk_without_room_is_refused_before_a_fit_or_an_inspection(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Resource probe 2026-12-07: on a disk with nothing free, `inspect` scored 100 images and `fit -o` to a new folder ran its
    # whole fit before each write failed (a fit over an existing model was refused first).
    import collections

    monkeypatch.setattr(shutil, "disk_usage", lambda path: collections.namedtuple("usage", "total used free")(2**30, 2**30, 4096))
    # (a full disk: under 64 KiB free)
    monkeypatch.setattr(Inspector, "fit", lambda *a, **k: pytest.fail("fitted on a full disk"))
    monkeypatch.setattr(Inspector, "inspect_batch", lambda *a, **k: pytest.fail("inspected on a full disk"))
    for command, out in ((["fit", str(synthetic_category)], tmp_path / "model"),
                         (["inspect", str(fitted_model), str(synthetic_category / "test" / "spot")], tmp_path / "out")):
        result = runner.invoke(app, [*command, "-o", str(out)])
        assert result.exit_code == 2 and "4 KiB free on its disk, and the" in _text(result) and "needs at least 64 KiB" in _text(result), \
            result.output
        assert not out.exists()
    # A file written after the work too: evaluate's JSON (it had scored every image first).
    result = runner.invoke(app, ["evaluate", str(fitted_model), str(synthetic_category), "--json", str(tmp_path / "metrics.json")])
    assert result.exit_code == 2 and "the metrics JSON needs at least 64 KiB" in _text(result), result.output


def test_a_write_that_fails_in_its_temporary_names_the_folder_not_the_temporary(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Resource probe 2026-12-07: out of inodes, the message named a hidden temporary already removed (.img001.mask.png.m712_f6h.tmp).
    from defectlens.engine import local

    out = tmp_path / "out"

    def no_inodes(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(out / ".000.mask.png.m712_f6h.tmp"))

    monkeypatch.setattr(local, "write_inspection", no_inodes)
    result = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test" / "spot" / "000.png"), "-o", str(out)])
    assert f"could not be written to {out} (No space left on device)" in _text(result) and ".tmp" not in result.output, result.output


def test_a_mount_point_as_a_models_folder_is_refused_before_the_work(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Regression probe 2026-12-07: `fit -o MOUNTPOINT` ran its whole fit, then ended in a traceback ("Device or resource busy"
    # from the rename that swaps a model in), leaving an empty folder beside it at each run.
    mount = tmp_path / "mnt"
    mount.mkdir()
    real = os.path.ismount
    monkeypatch.setattr(os.path, "ismount", lambda path: Path(path) == mount or real(path))
    monkeypatch.setattr(Inspector, "fit", lambda *a, **k: pytest.fail("fitted into a mount point"))
    result = runner.invoke(app, ["fit", str(synthetic_category), "-o", str(mount)])
    assert result.exit_code == 2 and "is a mount point" in _text(result) and f"pass a folder inside it ({mount / 'model'}" in _text(result)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnt"]
    # Through a link to it too, and a model that is a mount point before calibrate scores its images (regression probe).
    (tmp_path / "link").symlink_to(mount)
    result = runner.invoke(app, ["fit", str(synthetic_category), "-o", str(tmp_path / "link")])
    assert result.exit_code == 2 and "is a mount point" in _text(result), result.output
    shutil.copytree(fitted_model, mount, dirs_exist_ok=True)
    monkeypatch.setattr(Inspector, "inspect_batch", lambda *a, **k: pytest.fail("scored for a model it cannot save"))
    result = runner.invoke(app, ["calibrate", str(mount), "--good", str(synthetic_category / "test" / "good"),
                                 "--defective", str(synthetic_category / "test" / "spot")])
    assert result.exit_code == 2 and "copy the model into a folder inside the mount point, and calibrate that copy" in _text(result), \
        result.output


def test_a_model_saved_into_the_current_folder_by_a_dot(synthetic_category, tmp_path, monkeypatch):
    # Regression probe 2026-12-07: `fit -o .` ended after the whole fit in a traceback ("Device or resource busy: '.' ->
    # '..old-…'"), an empty folder left; `-o "$PWD"` worked.
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    result = runner.invoke(app, ["fit", str(synthetic_category), "-o", ".", "--image-size", "64"])
    assert result.exit_code == 0, result.output
    assert (here / "inspector.json").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["here"]
    # Replaced whole, the folder the process stood in was gone under it: the process goes on in the new one, and the shell
    # left in the removed one is told how to enter the new (the next command there had died in a oneMKL error; regression probe
    # of 0.3.16).
    assert Path(os.getcwd()) == here.resolve() and os.listdir(".")
    assert 'was replaced whole, with the current folder in it: this process goes on in the new one; a shell standing there is left ' \
        'in the removed folder (its files look gone) — enter it again: cd "$PWD"' \
        in _text(result)
    # A command started in a removed folder says so in one line, before PyTorch loads.
    gone = tmp_path / "gone"
    gone.mkdir()
    run = subprocess.run([sys.executable, "-c", "import os, sys\nos.chdir(sys.argv[1])\nos.rmdir(sys.argv[1])\n"
                          "sys.argv = ['defectlens', 'info', 'model']\nfrom defectlens._entry import main\nmain()", str(gone)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and run.stderr.startswith("error: the current folder no longer exists") and \
        'cd "$PWD"' in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_mount_points_are_told_by_the_system_bind_mounts_too_hidden_ones_not(tmp_path):
    # Regression probes 2026-12-07: a bind mount on the same file system crosses no device (a whole fit, then "Device or resource
    # busy"); and a folder standing where a mount point was hidden by a later mount over a folder above had been refused.
    from defectlens.io.atomic import is_mount_point

    shadow, inner, source, bound = tmp_path / "shad", tmp_path / "shad" / "inner", tmp_path / "b1", tmp_path / "b2"
    for folder in (inner, source, bound):
        folder.mkdir(parents=True)
    mounted: list[Path] = []
    try:
        for args, point in ((["-t", "tmpfs", "tmpfs"], inner), (["-t", "tmpfs", "tmpfs"], shadow), (["--bind", str(source)], bound)):
            if subprocess.run(["mount", *args, str(point)], capture_output=True).returncode != 0:
                pytest.skip("mounting needs root and a system that allows it here")
            mounted.append(point)
        inner.mkdir()  # on the tmpfs over shad: a plain folder where the hidden mount point was
        assert is_mount_point(shadow) and is_mount_point(bound) and not is_mount_point(inner) and not is_mount_point(source)
    finally:
        for point in reversed(mounted):
            subprocess.run(["umount", str(point)], capture_output=True)
        subprocess.run(["umount", str(inner)], capture_output=True)


def test_a_folder_replaced_under_a_subfolder_it_no_longer_has_says_where_to_go(tmp_path, monkeypatch):
    # Regression probe 2026-12-07: standing in a subfolder the new model lacks, the advice `cd "$PWD"` failed and the process
    # stayed in the removed folder; from Python the warning was placed in contextlib.py.
    import warnings

    folder = tmp_path / "model"
    (folder / "neighbourhood-1").mkdir(parents=True)
    monkeypatch.chdir(folder / "neighbourhood-1")
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        with atomic_directory(folder, lambda path: True) as fresh:
            (fresh / "inspector.json").write_text("{}")
    assert Path(os.getcwd()) == folder.resolve() and os.listdir(".") == ["inspector.json"]
    assert len(said) == 1 and said[0].filename == __file__, [(w.filename, str(w.message)) for w in said]
    assert str(said[0].message).endswith(f"enter it again: cd {folder} (neighbourhood-1 is not in the new one)"), str(said[0].message)


def test_an_example_too_large_for_the_memory_left_is_skipped_and_listed(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Regression probe 2026-12-07: one example image too large for the memory left ended `inspect --examples` and `evaluate
    # --types-k` before any image was scored.
    import defectlens.classify.examples as examples_module

    examples = tmp_path / "examples" / "spot"
    examples.mkdir(parents=True)
    for image in sorted((synthetic_category / "test" / "spot").glob("*.png")):
        shutil.copy(image, examples / image.name)
    read = examples_module.load_image

    def short_of_memory(path, *args, **kwargs):
        if Path(path).name == "001.png":
            raise MemoryError("Unable to allocate 230. MiB for an array with shape (8960, 6720)")
        return read(path, *args, **kwargs)

    monkeypatch.setattr(examples_module, "load_image", short_of_memory)
    out = tmp_path / "out"
    result = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test" / "spot"), "--examples",
                                 str(tmp_path / "examples"), "-o", str(out)])
    said = _text(result)
    assert result.exit_code == 0 and "Traceback" not in said, result.output
    assert "1 example(s) skipped:" in said and "001.png (this machine ran out of memory for it — fix: give it less at once" in said, said
    assert len(list(out.glob("*.report.json"))) == 4
    # Every example short of memory: the shortage said, not "located no defect" (regression probe 2026-12-07: other examples
    # had been asked for).
    for image in examples.iterdir():
        if image.name != "001.png":
            image.unlink()
    alone = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test" / "spot"), "--examples",
                                str(tmp_path / "examples"), "-o", str(tmp_path / "out2")])
    said = _text(alone)
    assert alone.exit_code == 2 and "no example could be used: this machine ran out of memory for 001.png — fix: give it less" in said, \
        said
    # Nor a file that cannot be read (it had been "the model located no defect").
    (examples / "001.png").unlink()
    (examples / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    unread = runner.invoke(app, ["inspect", str(fitted_model), str(synthetic_category / "test" / "spot"), "--examples",
                                 str(tmp_path / "examples"), "-o", str(tmp_path / "out3")])
    assert unread.exit_code == 2 and "no example could be used: broken.png could not be read — fix: re-export" in _text(unread), \
        unread.output


def test_a_batch_scored_again_image_by_image_says_what_reading_said_once(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Regression probe 2026-12-07: after a shortage, each image's reading warnings came again (1 + N lines, or N for 1).
    import warnings

    from PIL import Image

    pages = []
    for image in sorted((synthetic_category / "test" / "spot").glob("*.png"))[:2]:
        with Image.open(image) as first:
            first.save(tmp_path / f"{image.stem}.tif", save_all=True, append_images=[first.copy()])
        pages.append(tmp_path / f"{image.stem}.tif")
    inspector = Inspector.load(fitted_model)
    scored = Inspector.score_read

    def short_for_two(self, images, *args, **kwargs):
        if len(images) > 1:
            raise MemoryError("Unable to allocate 1 GiB")
        return scored(self, images, *args, **kwargs)

    monkeypatch.setattr(Inspector, "score_read", short_for_two)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        batch = inspector.inspect_batch(pages)
    assert len(batch.images) == 2 and not batch.failures
    assert sorted(str(w.message).split(":")[0] for w in said if "pages; only the first" in str(w.message)) == sorted(map(str, pages)), \
        [str(w.message) for w in said]
