"""A locked-down production host (probe 2026-12-07): a user without rights on some folders and files, read-only models,
no writable temporary folder. The suite runs as root, whom permissions do not stop: the refusals are simulated."""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from defectlens import Inspector
from defectlens.cli import app
from defectlens.errors import DatasetLayoutError, DefectlensWarning, ModelFileError
from defectlens.io import images_below, load_category

runner = CliRunner()


def _unlistable(monkeypatch: pytest.MonkeyPatch, *folders: Path) -> None:
    """Listing any of ``folders`` raises what a user without read permission on it gets."""
    real = os.scandir
    refused = {os.path.realpath(f) for f in folders}

    def scandir(path: object = ".") -> object:
        if os.path.realpath(os.fspath(path)) in refused:  # type: ignore[arg-type]
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))  # type: ignore[arg-type]
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "scandir", scandir)


def test_a_folder_that_cannot_be_listed_is_said_never_silently_empty(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Its images had been passed over without a word: `inspect` said "1 image(s) inspected", exit 0, and `evaluate` reported on
    # a test set without a whole defect type's folder, exit 0.
    lot = tmp_path / "lot"
    (lot / "sub").mkdir(parents=True)
    spots = sorted((synthetic_category / "test" / "spot").glob("*.png"))
    shutil.copy(spots[0], lot / "a.png")
    shutil.copy(spots[1], lot / "sub" / "c.png")
    _unlistable(monkeypatch, lot / "sub")
    found = images_below(lot)
    assert found.images == [lot / "a.png"] and found.unreadable_folders == [(lot / "sub", "permission denied")]
    result = runner.invoke(app, ["inspect", str(fitted_model), str(lot), "-o", str(tmp_path / "out")])
    assert result.exit_code == 3, result.output
    said = " ".join(result.output.split())
    assert f"{lot / 'sub'}: folder cannot be read (permission denied); its images were not inspected" in said
    said = r"1 folder\(s\) in .*lot were not read, their images not inspected: .*sub \(permission denied — fix: give"
    with pytest.warns(DefectlensWarning, match=said):
        assert [i.path for i in Inspector.load(fitted_model).inspect_batch(lot).images] == [lot / "a.png"]
    data = tmp_path / "data"
    shutil.copytree(synthetic_category, data)
    _unlistable(monkeypatch, lot / "sub", data / "test" / "spot")
    category = load_category(data)
    with pytest.raises(DatasetLayoutError, match=r"folder cannot be read \(permission denied\)"):
        category.require_test()
    result = runner.invoke(app, ["evaluate", str(fitted_model), str(data), "--json", str(tmp_path / "m.json")])
    assert result.exit_code == 2 and "spot: folder cannot be read (permission denied)" in " ".join(result.output.split()), result.output
    assert not (tmp_path / "m.json").exists()
    # fit reads train/good only: a test folder it cannot read is no reason to refuse it (regression probe 2026-12-07).
    assert category.require_train_good() and runner.invoke(app, ["fit", str(data), "-o", str(tmp_path / "m"), "--max-images", "4"]).exit_code == 0
    # A ground-truth folder that cannot be listed or entered (mode 644 lists, but enters not): refused, not read as "no masks"
    # with null pixel metrics and exit 0 — by evaluate on the dataset and on --good/--defective, and by calibrate.
    monkeypatch.undo()
    masks = data / "ground_truth" / "spot"
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) != str(masks) and real_access(path, mode, **kw))
    test = data / "test"
    for args in (["evaluate", str(fitted_model), str(data)], ["evaluate", str(fitted_model), "--good", str(test / "good"), "--defective",
                 str(test / "spot")], ["calibrate", str(fitted_model), "--good", str(test / "good"), "--defective", str(test / "spot"),
                 "--dry-run"]):
        result = runner.invoke(app, args)
        said = " ".join(result.output.split())
        assert result.exit_code == 2 and "ground_truth/spot: " in said and "cannot be read (permission denied)" in said, (args, said)
    assert runner.invoke(app, ["fit", str(data), "-o", str(tmp_path / "m2"), "--max-images", "4"]).exit_code == 0


def test_a_file_below_a_folder_that_cannot_be_entered_is_one_line(fitted_model, tmp_path, monkeypatch):
    # `inspect MODEL noperm/a.png` ended in a PermissionError traceback (asking whether the path is a link raised it again).
    image = tmp_path / "noperm" / "a.png"
    real_stat = os.stat

    def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).startswith(str(image.parent)):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat)
    result = runner.invoke(app, ["inspect", str(fitted_model), str(image), "-o", str(tmp_path / "out")])
    assert "Traceback" not in result.output and result.exit_code in (2, 3), result.output
    assert "permission denied (a folder on its path cannot be entered)" in " ".join(result.output.split())


def _as_a_user_without_root(check, folder: Path) -> None:
    """Run ``check()`` as a user whom permissions stop: the suite's own user where it is not root, else a forked child that
    has become ``nobody`` (it imports nothing new: /root, where Python lives, is closed to it). ``folder`` is made writable to
    that user; a failure in the child comes back as its message."""
    if os.geteuid() != 0:
        check()
        return
    folder.chmod(0o777)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        status = 0
        try:
            os.setgid(65534)
            os.setuid(65534)
            check()
        except BaseException as exc:  # noqa: BLE001 - everything goes back to the parent
            os.write(write, f"{type(exc).__name__}: {exc}".encode())
            status = 1
        os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as said:
        message = said.read().decode()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, message


def test_a_read_only_model_is_copied_writable_and_read_only_folders_are_removed(tmp_path):
    # An export of a read-only model (files 444, folders 555) copied its rights: its folder could not be written, was not
    # removed (rmtree's failure unsaid), and every later export and calibrate there ended in a PermissionError traceback.
    from defectlens.io.atomic import clean_stale_temporaries, copy_folder_into, remove_folder

    base = Path(tempfile.mkdtemp(prefix="defectlens-test-"))  # pytest's own folders are closed to other users

    def check() -> None:
        model = base / "model"
        (model / "neighbourhood-1").mkdir(parents=True)
        for name in ("detector.json", "neighbourhood-1/bank.safetensors"):
            (model / name).write_text("x")
            (model / name).chmod(0o444)
        for folder in (model / "neighbourhood-1", model):
            folder.chmod(0o555)
        copy = base / ".out.tmp-abcdefgh"
        copy.mkdir()
        copy_folder_into(model, copy)
        (copy / "encoder.onnx").write_text("y")  # the copy is writable, its folders too
        (copy / "neighbourhood-1" / "more").write_text("z")
        assert not os.access(model, os.W_OK)
        for folder in (copy / "neighbourhood-1", copy):
            folder.chmod(0o555)  # as an earlier version left it
        old = time.time() - 3600
        os.utime(copy, (old, old))
        assert clean_stale_temporaries(base, "out") == [copy] and not copy.exists()
        remove_folder(model)
        assert not model.exists()
        # A file of the source this user cannot read is named as the source's (it had been blamed on the export's folder).
        private = base / "private"
        private.mkdir()
        (private / "notes.txt").write_text("mine")
        (private / "notes.txt").chmod(0)
        try:
            copy_folder_into(private, base / "copy")
        except ModelFileError as exc:
            assert str(exc).startswith(f"{private / 'notes.txt'}: cannot be copied (permission denied)"), str(exc)
        else:
            raise AssertionError("an unreadable file was copied")

    try:
        _as_a_user_without_root(check, base)
    finally:
        remove_folder(base)
    # A named pipe or a link to nothing in a model folder: named as the source's (a traceback, and "permission denied").
    for odd in ("pipe", "link"):
        model = tmp_path / odd
        model.mkdir()
        (model / "detector.json").write_text("{}")
        os.mkfifo(model / "odd") if odd == "pipe" else (model / "odd").symlink_to(tmp_path / "nowhere")
        with pytest.raises(ModelFileError, match="not a regular file" if odd == "pipe" else r"a link to nothing \("):
            copy_folder_into(model, tmp_path / f"{odd}-copy")


def test_an_output_folder_there_already_needs_no_right_on_the_folder_above(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # The usual production layout (/srv/app owned by root, /srv/app/out by the service's user) had been refused: "/srv/app
    # cannot be written …, so the output folder cannot be either". A folder still to be made, or written whole, is refused.
    import defectlens.io.outputs as outputs

    app_folder, out = tmp_path / "srv", tmp_path / "srv" / "out"
    out.mkdir(parents=True)
    real = outputs.can_write
    monkeypatch.setattr(outputs, "can_write", lambda folder: folder != app_folder and real(folder))
    image = sorted((synthetic_category / "test" / "spot").glob("*.png"))[0]
    result = runner.invoke(app, ["inspect", str(fitted_model), str(image), "-o", str(out)])
    assert result.exit_code == 0 and (out / f"{image.stem}.json").is_file(), result.output
    result = runner.invoke(app, ["inspect", str(fitted_model), str(image), "-o", str(app_folder / "new")])
    assert result.exit_code == 2 and "srv cannot be written" in " ".join(result.output.split()), result.output
    result = runner.invoke(app, ["export", str(fitted_model), "-o", str(out)])
    assert result.exit_code == 2 and "srv cannot be written" in " ".join(result.output.split()), result.output


def test_no_writable_temporary_folder_stops_no_command(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # A read-only root file system with TMPDIR missing: every command, `info` too, had ended in a traceback at start-up
    # (the plot cache's folder), Inspector.load in Matplotlib's OSError (imported for the overlay's colours), and
    # `evaluate --json /dev/stdout` failed after the whole evaluation with the fix "free space on its disk".
    import tempfile as tempfile_module

    import matplotlib

    from defectlens._entry import quiet_plot_cache
    from defectlens.evaluate.roc import PlotUnavailable, pyplot
    from defectlens.io import write_json_atomic

    def no_folder(*args: object, **kwargs: object) -> str:
        raise FileNotFoundError(errno.ENOENT, "No usable temporary directory found")

    monkeypatch.delenv("MPLCONFIGDIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", "/proc/nowhere")
    monkeypatch.setattr(tempfile_module, "gettempdir", no_folder)
    monkeypatch.setattr(tempfile_module, "mkstemp", no_folder)
    quiet_plot_cache()
    assert "MPLCONFIGDIR" not in os.environ
    read, write = os.pipe()
    try:
        write_json_atomic(Path(f"/proc/self/fd/{write}"), {"written": "in memory"}, named=True)  # as `--json` writes it
        assert json.loads(os.read(read, 1000)) == {"written": "in memory"}
    finally:
        os.close(read)
        os.close(write)
    monkeypatch.setattr(matplotlib, "use", lambda backend: no_folder())
    with pytest.raises(PlotUnavailable, match="Matplotlib, which draws it, has no writable cache folder"):
        pyplot()


def test_the_overlay_colours_are_matplotlibs_inferno():
    # Kept as a table so that inspecting needs no Matplotlib (above); it must stay the scale the README's pictures show.
    import numpy as np
    from matplotlib import colormaps

    from defectlens.locate.overlay import _HEAT

    assert np.array_equal(_HEAT, (colormaps["inferno"](np.linspace(0, 1, 256))[:, :3] * 255).astype(np.uint8))


def test_a_permission_refused_where_no_check_saw_it_is_one_line():
    # Six commands' output, model and data paths below a folder the user cannot enter had ended in a PermissionError
    # traceback, from wherever the path was first touched. The command line is stood in for, to keep this fast.
    import subprocess
    import sys

    code = ("import sys, types\n"
            "cli = types.ModuleType('defectlens.cli'); progress = types.ModuleType('defectlens.cli.progress')\n"
            "progress.INTERRUPT_SAID = False\n"
            "def app(): raise PermissionError(13, 'Permission denied', '/srv/closed/m\\udce9/inspector.json')\n"
            "cli.app = app; sys.modules['defectlens.cli'] = cli; sys.modules['defectlens.cli.progress'] = progress\n"
            "from defectlens._entry import main\nmain()\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip() == ("error: /srv/closed/m\\xe9/inspector.json: permission denied — fix: give this user access to it and "
                                   "enter permission (x) on each folder above it, or run as a user who has them")


def test_a_model_this_user_cannot_read_is_said_so_not_corrupt(fitted_model, tmp_path, monkeypatch):
    # Below a folder the user cannot enter, Inspector.load raised a bare PermissionError; a JSON file it may not read was a
    # traceback; a memory bank it may not read was "corrupt (FileNotFoundError) — fix: re-fit the model", of a whole model.
    from defectlens.errors import ModelFileError

    closed = tmp_path / "closed"
    shutil.copytree(fitted_model, closed / "model")
    real_stat, real_access, real_read = os.stat, os.access, Path.read_bytes

    def stat(path: object, *args: object, **kwargs: object) -> os.stat_result:
        if str(path).startswith(str(closed / "model")):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "stat", stat)
    with pytest.raises(ModelFileError, match=r"cannot be read \(permission denied: it, or a folder on its path, cannot be entered\)"):
        Inspector.load(closed / "model")
    monkeypatch.setattr(os, "stat", real_stat)
    monkeypatch.setattr(os, "access", lambda path, mode: not str(path).endswith(".safetensors") and real_access(path, mode))
    with pytest.raises(ModelFileError, match=r"memory bank cannot be read \(permission denied\) — fix: give this user read permission"):
        Inspector.load(closed / "model")
    monkeypatch.setattr(os, "access", real_access)

    def read_bytes(self: Path) -> bytes:
        if self.name == "detector.json":
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(ModelFileError, match=r"detector.json: cannot be read \(permission denied\)"):
        Inspector.load(closed / "model")


def test_calibrate_of_a_model_it_cannot_write_says_what_to_do_instead(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # It had said "pass a folder you can write to", of a command that takes no output folder.
    import defectlens.io.outputs as outputs

    model = tmp_path / "models" / "model"
    shutil.copytree(fitted_model, model)
    real = outputs.can_write
    monkeypatch.setattr(outputs, "can_write", lambda folder: folder != model.parent and real(folder))
    test = synthetic_category / "test"
    result = runner.invoke(app, ["calibrate", str(model), "--good", str(test / "good"), "--defective", str(test / "spot")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2, said
    assert "fix: calibrate a copy you can write (cp -r MODEL_DIR COPY), or see the new thresholds with --dry-run" in said, said


def test_an_input_named_that_cannot_be_read_is_no_usage_error(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # The command line's own check refused the whole run, "Invalid value for 'inputs': path 'nr.png' is not readable", where a
    # batch lists an unreadable image as not inspected and goes on (regression probe 2026-12-07).
    image = sorted((synthetic_category / "test" / "spot").glob("*.png"))[0]
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) != str(image) and real(path, mode, **kw))
    result = runner.invoke(app, ["inspect", str(fitted_model), str(image), str(synthetic_category / "test" / "good"), "-o", str(tmp_path / "o")])
    assert result.exit_code != 2 and "is not readable" not in result.output, result.output


def test_names_not_in_utf8_are_shown_as_ls_shows_them_in_tables_and_plots(fitted_model, synthetic_category, tmp_path):
    # A Latin-1 model folder's ROC plot title ended calibrate in a TypeError after the thresholds were saved, and evaluate's
    # confusion matrix after the whole evaluation; table titles showed Python's stand-in ("\udce9").
    model = tmp_path / os.fsdecode(b"mod\xe8le")
    shutil.copytree(fitted_model, model)
    test = synthetic_category / "test"
    result = runner.invoke(app, ["calibrate", str(model), "--good", str(test / "good"), "--defective", str(test / "spot")])
    said = " ".join(result.output.split())
    assert result.exit_code == 0 and "mod\\xe8le: 4 good, 4 defective image(s)" in said and "ROC plot →" in said, result.output
    assert "\\udce8" not in said


def test_info_of_a_model_fitted_from_a_folder_named_in_latin1_prints_its_card(synthetic_category, tmp_path, monkeypatch):
    # Regression probe 2026-12-07: under a UTF-8 locale `info` ended in a UnicodeEncodeError on the card's training folder
    # (Python's stand-in for the Latin-1 byte), where card.md has "\xe9".
    good = tmp_path / os.fsdecode(b"caf\xe9")
    shutil.copytree(synthetic_category / "train" / "good", good)
    model = tmp_path / "model"
    assert runner.invoke(app, ["fit", str(good), "-o", str(model), "--max-images", "4"]).exit_code == 0
    result = runner.invoke(app, ["info", str(model)])
    assert result.exit_code == 0 and f"{tmp_path}/caf\\xe9" in result.output, result.output
    assert f"{tmp_path}/caf\\xe9" in (model / "card.md").read_text(encoding="utf-8")
    # A model folder this user may not read: the command line's own refusal says what to do, not "see --help".
    real = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: os.fspath(path) != str(model) and real(path, mode, **kw))
    refused = runner.invoke(app, ["info", str(model)])
    assert refused.exit_code == 2 and "is not readable" in refused.output and "fix: give this user read permission on it" in refused.output


def test_calibrate_refuses_a_labelled_folder_it_cannot_list_before_scoring(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Thresholds set on the rest of the set had been saved, with exit 3; evaluate refuses the same folders.
    good = tmp_path / "good"
    shutil.copytree(synthetic_category / "test" / "good", good)
    (good / "lot2").mkdir()
    model = tmp_path / "model"
    shutil.copytree(fitted_model, model)
    before = (model / "inspector.json").read_bytes()
    _unlistable(monkeypatch, good / "lot2")
    result = runner.invoke(app, ["calibrate", str(model), "--good", str(good), "--defective", str(synthetic_category / "test" / "spot")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "lot2: folder cannot be read (permission denied)" in said and "scoring" not in said, said
    assert (model / "inspector.json").read_bytes() == before


def test_folders_entered_but_not_listed_or_listed_but_not_entered(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Regression probe 2026-12-07: a masks' folder this user may enter but not list (mode 100) had been searched by the masks'
    # names before, and was then refused; a type folder it may list but not enter (mode 644) was evaluated as holding no
    # defect, its files "skipped" one by one, exit 3; a dataset whose only image folder cannot be read was "no images found —
    # lay it out as MVTec-AD does".
    data = tmp_path / "data"
    shutil.copytree(synthetic_category, data)
    masks, spot = data / "ground_truth" / "spot", data / "test" / "spot"
    real = os.access

    def access(path: object, mode: int, **kw: object) -> bool:
        if os.fspath(path) == str(masks) and mode & os.R_OK:  # enter, not list
            return False
        if os.fspath(path) == str(spot) and mode & os.X_OK:  # list, not enter
            return False
        return real(path, mode, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "access", access)
    result = runner.invoke(app, ["evaluate", str(fitted_model), str(data)])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "test/spot: folder cannot be read (permission denied)" in said, said
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not (os.fspath(path) == str(masks) and mode & os.R_OK) and real(path, mode, **kw))
    metrics = tmp_path / "m.json"
    assert runner.invoke(app, ["evaluate", str(fitted_model), str(data), "--json", str(metrics)]).exit_code == 0
    assert json.loads(metrics.read_text())["pixel_auroc"] is not None  # the masks found by their names
    only = tmp_path / "only"
    shutil.copytree(synthetic_category / "train", only / "train")
    _unlistable(monkeypatch, only / "train" / "good")
    result = runner.invoke(app, ["fit", str(only), "-o", str(tmp_path / "m")])
    said = " ".join(result.output.split())
    assert result.exit_code == 2 and "good: folder cannot be read (permission denied), and no other holds images" in said, said


def test_a_volumes_lost_and_found_and_a_ground_truth_entered_not_listed_stop_nothing(fitted_model, synthetic_category, tmp_path, monkeypatch):
    # Regression probe 2026-12-07: a folder of good parts on a volume of its own holds root's lost+found (mode 700), which
    # had made calibrate, fit and evaluate refuse the folder; a ground_truth/ that may be entered but not listed (mode 311)
    # ended every command, fit too, in a PermissionError.
    data = tmp_path / "data"
    shutil.copytree(synthetic_category, data)
    for split in ("train/good", "test/good", "test"):
        (data / split / "lost+found").mkdir()
    closed = [data / split / "lost+found" for split in ("train/good", "test/good", "test")]
    _unlistable(monkeypatch, *closed)
    monkeypatch.setattr(os, "getuid", lambda: 1000)  # the folders are root's: this user is another
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(os.fspath(path)) not in closed and real_access(path, mode, **kw))
    assert images_below(data / "test" / "good").unreadable_folders == []
    assert runner.invoke(app, ["evaluate", str(fitted_model), str(data)]).exit_code == 0  # test/lost+found is no defect type
    # One the user can read is read like any other folder (skipped by its name alone, a user's images there had gone unsaid).
    mine = tmp_path / "lot" / "lost+found"
    shutil.copytree(synthetic_category / "test" / "good", mine)
    assert images_below(tmp_path / "lot").images == sorted(mine.iterdir())
    # ... and one of the user's own that they closed is a folder that cannot be read, said (regression probe: passed over).
    monkeypatch.setattr(os, "getuid", lambda: 0)
    assert [p for p, _ in images_below(data / "test" / "good").unreadable_folders] == [data / "test" / "good" / "lost+found"]
    monkeypatch.setattr(os, "getuid", lambda: 1000)
    # ... and so is another user's that is not root's: no file system made it (regression probe 2026-12-07: passed over).
    os.chown(data / "test" / "good" / "lost+found", 1234, 1234)
    assert [p for p, _ in images_below(data / "test" / "good").unreadable_folders] == [data / "test" / "good" / "lost+found"]
    os.chown(data / "test" / "good" / "lost+found", 0, 0)
    test = data / "test"
    assert runner.invoke(app, ["calibrate", str(fitted_model), "--good", str(test / "good"), "--defective", str(test / "spot"),
                               "--dry-run"]).exit_code == 0
    gt = data / "ground_truth"
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: not (os.fspath(path) == str(gt) and mode & os.R_OK)
                        and Path(os.fspath(path)) not in closed and real_access(path, mode, **kw))
    real_iterdir = Path.iterdir
    monkeypatch.setattr(Path, "iterdir", lambda self: (_ for _ in ()).throw(PermissionError(errno.EACCES, "Permission denied", str(self)))
                        if self == gt else real_iterdir(self))
    metrics = tmp_path / "m.json"
    result = runner.invoke(app, ["evaluate", str(fitted_model), str(data), "--json", str(metrics)])
    assert result.exit_code == 0 and json.loads(metrics.read_text())["pixel_auroc"] is not None, result.output
    assert runner.invoke(app, ["fit", str(data), "-o", str(tmp_path / "m"), "--max-images", "4"]).exit_code == 0
    # Its masks' folder in another case cannot be found by name: said (it had been "no usable mask" with no word of why).
    (gt / "spot").rename(gt / "Spot")
    real_listdir = os.listdir
    monkeypatch.setattr(os, "listdir", lambda path=".": (_ for _ in ()).throw(PermissionError(errno.EACCES, "Permission denied", str(path)))
                        if os.fspath(path) == str(gt) else real_listdir(path))
    result = runner.invoke(app, ["evaluate", str(fitted_model), str(data)])
    said = " ".join(result.output.split())
    assert f"{gt}: cannot be listed (permission denied), so the masks of spot were looked for in spot/ by that exact name" in said, said


def test_lost_and_found_is_no_type_of_examples_nor_of_masks(synthetic_category, tmp_path, monkeypatch):
    # Regression probe 2026-12-07: root's closed lost+found in an examples folder stopped `inspect --examples` ("permission
    # denied"), and an empty one in ground_truth/ drew "no test/lost+found folder beside it … rename it".
    from defectlens.classify import examples_from_folders

    data = tmp_path / "data"
    shutil.copytree(synthetic_category, data)
    (data / "ground_truth" / "lost+found").mkdir()
    assert not [n for n in load_category(data).notes if "lost+found" in n]
    examples = tmp_path / "examples"
    shutil.copytree(data / "test" / "spot", examples / "spot")
    closed = examples / "lost+found"
    closed.mkdir()
    _unlistable(monkeypatch, closed)
    monkeypatch.setattr(os, "getuid", lambda: 1000)  # root's folder, another user reading
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: Path(os.fspath(path)) != closed and real_access(path, mode, **kw))
    found = examples_from_folders(examples)
    assert {e.defect_type for e in found.examples} == {"spot"} and not [n for n in found.notes if "lost+found" in n]
