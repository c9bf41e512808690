"""The ``defectlens`` console command: the command line, with a Ctrl-C pressed while it loads
(PyTorch takes seconds) said in one line instead of an import traceback."""

from __future__ import annotations

import atexit
import os
import signal
import stat
import sys


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def stopping_signals() -> list[signal.Signals]:
    """The signals besides Ctrl-C's on which a command stops as on Ctrl-C (says what was finished, leaves its outputs
    whole): SIGTERM (``docker stop``, systemd, a cancelled CI job) and SIGHUP (the terminal or ssh session closed),
    unless the process was started ignoring it, as ``nohup`` starts one. On SIGHUP an `inspect` had died with status
    129, no summary and temporaries left (pipelines probe 2026-12-06)."""
    hangup = getattr(signal, "SIGHUP", None)  # none on Windows
    return [signal.SIGTERM, *([hangup] if hangup is not None and signal.getsignal(hangup) is not signal.SIG_IGN else [])]


def stopped_status() -> int:
    """The status of a command stopped before it did anything: 130, but 0 for `serve`, whose stop (SIGTERM from a service
    manager, Ctrl-C) is its normal end, as its help says: a `systemctl stop` while the models loaded had been recorded as a
    failure (proxy probe 2026-12-07)."""
    return 0 if sys.argv[1:2] == ["serve"] else 130


def main() -> None:
    """Load the command line and run it."""
    # SIGTERM as Ctrl-C from the first instant: while PyTorch loads it had ended the command with
    # status 143 and no word, where every other moment gives 130 and says what was done.
    for stopping in stopping_signals():
        signal.signal(stopping, _stop)
    if sys.stderr is None:
        # Started with standard error closed (a daemon, a cron job): every command, `serve` too, had ended with status 1
        # and not a word, the console failing as it was made (environment probe 2026-12-06). What it says goes nowhere.
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - for the life of the process
    if sys.argv[1:] == ["--version"] and sys.stdout is not None:
        # Without loading the command line (PyTorch, faiss: 3 s), so that it answers where one of them is broken, as a
        # person diagnosing an install asks it first (packaging probe 2026-12-06).
        from defectlens import __version__

        try:
            sys.stdout.write(f"defectlens {__version__}\n")
            sys.stdout.flush()
        except OSError as exc:  # a reader gone (`| true`) or a full device: nothing more to say it with
            os._exit(0 if isinstance(exc, BrokenPipeError) else 1)
        end_with(0)
        raise SystemExit(0)
    try:
        os.getcwd()
    except FileNotFoundError:
        # A shell left standing in a folder that a fit or calibrate replaced whole (or someone removed): PyTorch's load had died
        # there in "Intel oneMKL FATAL ERROR: Cannot load libtorch_cpu.so" (regression probe 2026-12-07).
        sys.stderr.write("error: the current folder no longer exists (replaced whole by a fit or calibrate, or removed) — fix: "
                         'enter it again (cd "$PWD") or another folder, and run the command there\n')
        end_with(2)
        raise SystemExit(2) from None
    cap_threads()
    quiet_plot_cache()
    try:
        from defectlens.cli import app
    except KeyboardInterrupt:
        # "By this run": a --resume stopped here had read "nothing done" beside 32 finished results (probe).
        sys.stderr.write("interrupted: stopped while loading, nothing done by this run\n")
        raise SystemExit(stopped_status()) from None
    from defectlens.cli.progress import INTERRUPT_SAID

    try:
        app()
    except PermissionError as exc:
        # Where no command's own check saw it coming: a path below a folder this user cannot enter had been a traceback from
        # wherever it was first touched (locked-down host probe 2026-12-07: six commands' output, model and data paths).
        sys.stderr.write(f"error: {permission_refusal(exc)}\n")
        end_with(2)
        raise SystemExit(2) from None
    except (MemoryError, RuntimeError, OSError, ImportError) as exc:
        # Where no command's own handling saw it: a fit or a model's load under a memory limit had ended in a traceback of 216
        # lines (resource probe 2026-12-07), and a library's shared object not mapped for want of memory (an ImportError) in 64.
        # One line, the machine's shortage and the fix; anything else as it was.
        from defectlens.errors import SHORT_OF_FIX, out_of_resources, said_in_a_line

        if (short := out_of_resources(exc)) is None:
            raise
        sys.stderr.write(f"error: this machine ran out of {short} ({said_in_a_line(exc)}) — fix: {SHORT_OF_FIX[short]}\n")
        end_with(2)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        # While the command line was built from the commands' signatures: a traceback had said it.
        sys.stderr.write("interrupted: stopped while starting, nothing done by this run\n")
        raise SystemExit(130) from None
    except SystemExit as exc:
        # Typer turns a Ctrl-C no command caught (between its steps) into status 130 without a word.
        if exc.code == 130 and not INTERRUPT_SAID:
            sys.stderr.write(f"interrupted: stopped; {UNSAID_INTERRUPT}\n")
        if exc.code == 2 and (dashed := dashed_files(sys.argv[1:])):
            # A part photographed as "-x.png" read as an unknown option -x (environment probe 2026-12-06).
            sys.stderr.write(f"note: {dashed[0]} is a file here: pass it as ./{dashed[0]}, or after --, or it is read as an option\n")
        end_with(0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1)
        raise
    end_with(0)


def permission_refusal(exc: PermissionError) -> str:
    """One line for a permission the system refused: the path, and the fix."""
    where = exc.filename if exc.filename is not None else "a file or folder"
    shown = os.fsencode(where).decode("utf-8", "backslashreplace") if isinstance(where, str) else str(where)
    return (f"{shown}: permission denied — fix: give this user access to it and enter permission (x) on each folder above it, "
            "or run as a user who has them")


def end_with(status: int) -> None:
    """From here the command has finished with ``status``: a Ctrl-C, SIGTERM or SIGHUP while Python shuts down (most of a
    second after the last line) ends the process at once with that status. It had turned a finished fit, calibrate or export
    into status 130 or 143, a CI job or `docker stop` reading a failure after "saved" (interruption probe 2026-12-06).
    Python puts back the default of every handler it set late in shutting down, when the rest of that second is still to
    come (PyTorch's teardown): from the exit handlers on they are ignored (pipelines probe 2026-12-06: still 143)."""

    def finished(signum: int, frame: object) -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:  # noqa: BLE001 - a closed or broken stream: what it held goes, the status stays
                continue
        os._exit(status)

    stopping = [signal.SIGINT, *stopping_signals()]
    for signum in stopping:
        signal.signal(signum, finished)
    # Registered last, so run first of the exit handlers.
    atexit.register(lambda: [signal.signal(signum, signal.SIG_IGN) for signum in stopping])


def dashed_files(arguments: list[str]) -> list[str]:
    """Arguments that start with a dash and name a file or folder that is there (before any ``--``)."""
    ahead = arguments[: arguments.index("--")] if "--" in arguments else arguments
    return [a for a in ahead if a.startswith("-") and a != "-" and os.path.exists(a)]


def usable_cores() -> int:
    """The cores this process may use (its CPU affinity where the system has one)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cap_threads() -> None:
    """``OMP_NUM_THREADS`` no larger than the cores this process may use, before PyTorch or ONNX Runtime reads it: at
    100 000 an exported model's run made 32 000 threads, took 17 GB and did not stop on SIGTERM, and PyTorch ran 4 times
    slower (environment probe 2026-12-06)."""
    cores = usable_cores()
    # OpenMP's forms too: " 100000" and a list per nesting level, "100000,1" (regression probe 2026-12-06).
    levels = [level.strip() for level in os.environ.get("OMP_NUM_THREADS", "").split(",")]
    if all(level.isdigit() for level in levels) and any(int(level) > cores for level in levels):
        os.environ["OMP_NUM_THREADS"] = ",".join(str(min(int(level), cores)) for level in levels)


def quiet_plot_cache() -> None:
    """A writable folder for Matplotlib's cache where the home folder has none (unset, missing or read-only HOME: a
    service account): every command, `--version` too, had begun with Matplotlib's two-line warning about it
    (environment probe 2026-12-06). One folder per user under the temporary folder, kept for the next run."""
    if os.environ.get("MPLCONFIGDIR"):
        return
    home = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    wanted = os.path.join(home, "matplotlib")
    if os.path.isabs(wanted):
        # Nothing made here: the nearest folder that exists, writable, is where Matplotlib makes its own.
        there = wanted
        while not os.path.exists(there) and os.path.dirname(there) != there:
            there = os.path.dirname(there)
        if os.path.isdir(there) and os.access(there, os.W_OK | os.X_OK):
            return
    import tempfile

    try:
        # Inside the try: a host with no writable temporary folder had ended every command here, `info` too, in a traceback
        # (locked-down host probe 2026-12-07). Only the ROC plots need Matplotlib: they say why where they cannot have it.
        own = os.path.join(tempfile.gettempdir(), f"defectlens-matplotlib-{os.getuid()}")
        os.makedirs(own, mode=0o700, exist_ok=True)
        info = os.lstat(own)
        if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode):
            return  # another user's (planted: its matplotlibrc would be read) or a link: Matplotlib says why, as before
        if stat.S_IMODE(info.st_mode) != 0o700:
            os.chmod(own, 0o700)  # made under a umask such as 0222 (unwritable), or opened to others since
    except OSError:
        return  # Matplotlib says why, as before
    os.environ["MPLCONFIGDIR"] = own


UNSAID_INTERRUPT = "every file defectlens writes is written whole or not at all: run the command again to finish"
"""What is said of a Ctrl-C that came where no command says what it had finished."""
