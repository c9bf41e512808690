"""`inspect --engine ray`: the same batches, inspected and written by a pool of Ray actors.

Each actor loads the model and the optional stages once (:func:`~defectlens.engine.local.load_for_inspection`)
and runs :func:`~defectlens.engine.local.inspect_and_write` — the local engine's own code — on the
batches the driver hands it, reading the batch's images and writing its files itself. The batches
are :meth:`~defectlens.Inspector.plan_batches`'s, so outputs are identical to the local engine's.
Inputs and the output folder must be visible at the same paths on every node (one machine, or a
shared filesystem on a cluster).

A worker that dies mid-batch (killed, out of memory, node lost) takes only that batch with it:
the batch is retried once on a fresh actor, then its images are listed as failed. Files of
batches already done stay written (each image's JSON is written last and atomically).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import logging
import os
import signal
import socket
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import defectlens
from defectlens.errors import ConfigError, DefectlensWarning, collected_warnings, warn_caller
from defectlens.export.model import is_exported
from defectlens.export.runtime import available_threads
from defectlens.inspector import Failure

PIP_HINT = "pip install 'defectlens[ray]'  (in a clone: pip install -e '.[ray]')"
FAULT_ENV = "DEFECTLENS_RAY_FAULT"
"""Fault injection for tests: a worker given a batch holding an image of this file name writes
the images before it and exits, as a worker killed mid-batch would (the retry-then-fail path
cannot be tested otherwise)."""
RETRIES = 1
"""Times a batch is given to a fresh worker after its worker died."""


def require_ray() -> None:
    """Raise a one-line :class:`ConfigError` with the pip command when Ray is not installed, or
    installed but broken (imported here: finding the package is not the same as loading it)."""
    if importlib.util.find_spec("ray") is None:
        raise ConfigError("--engine ray needs the Python package 'ray', which is not installed", None, PIP_HINT)
    try:
        import ray  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"--engine ray: the Python package 'ray' is installed but cannot be imported ({exc})", None,
                          f"reinstall it: {PIP_HINT}") from None


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide to run."""

    address: str | None = None
    """A running cluster's address (``ray start --head`` prints it); None starts Ray on this machine."""
    workers: int = 0
    """Actors in the pool; 0: as many as fit, each on the CPUs its threads use (:func:`plan_pool`):
    one per CPU for an exported model."""


@functools.cache
def code_fingerprint() -> str:
    """sha256 of this defectlens's source files: a worker that imports another copy (a cluster's
    `ray start` run from another checkout) would write other outputs under the same version string."""
    root = Path(defectlens.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.suffix in (".py", ".html", ".json") and p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class WorkerSpec:
    """What an actor needs to load the model and the optional stages exactly as `inspect` did."""

    model_dir: Path
    taxonomy: Path | None
    cue: str
    examples: Path | None
    k: int
    writer: str
    output: Path
    threshold: float | None = None
    """`inspect --threshold`: this run's image threshold, the same on every worker."""
    overlay_format: str = "png"
    """`inspect --overlay`: the overlays' format, the same on every worker."""
    torch_threads: int = field(default_factory=torch.get_num_threads)
    """The driver's thread count, which a worker inspecting with a PyTorch model keeps (see
    :func:`worker_thread_count`)."""
    cwd: Path = field(default_factory=Path.cwd)
    """The driver's working folder, where a worker reads relative paths from: a cluster's workers
    start in their own, and a relative `-o` put every result there while the driver found none."""
    code: str = field(default_factory=code_fingerprint)
    """The driver's :func:`code_fingerprint`, which every worker's must equal."""


def worker_thread_count(spec: WorkerSpec) -> int:
    """Threads a worker runs on. An exported model: the CPUs Ray gave the actor (one), so N
    workers use N cores — ONNX Runtime and OpenVINO sum the same way on any number of threads,
    and everything after the network is thread-independent too (features are standardised from
    integer sums). A PyTorch model: the driver's count — oneDNN splits some convolutions' sums by
    thread count (last-digit differences), and a worker must write the local engine's very scores."""
    return available_threads() if is_exported(spec.model_dir) else spec.torch_threads


def worker_cpus(spec: WorkerSpec) -> int:
    """CPUs a worker asks Ray for: the threads it will run on. An exported model runs on the one CPU
    it is given; a PyTorch model on the driver's thread count (see :func:`worker_thread_count`)."""
    return 1 if is_exported(spec.model_dir) else max(1, spec.torch_threads)


def plan_pool(requested: int, node_cpus: Sequence[float], cpus_per_worker: int) -> tuple[int, int, str | None]:
    """How many workers, how many CPUs each, and a note when fewer run than were asked for.

    Each worker asks for the CPUs its threads use, so Ray never places more threads on a node
    than it has cores: two processes that each spin two OpenMP threads on two cores ran 100
    magnetic tiles each in 23.5 s together, against 13.4-15.3 s for one process on all 200
    (2026-12-04). A worker never asks for more than the largest node has (it could not start);
    ``requested`` 0 means as many as fit, and more than fit would wait for CPUs forever, so it
    is cut to what fits.
    """
    cpus = max(1, min(cpus_per_worker, int(max(node_cpus, default=1))))
    fits = max(1, sum(int(c) // cpus for c in node_cpus))
    if not requested:
        return fits, cpus, None
    if requested > fits:
        note = (f"--workers {requested}: each worker runs on {cpus} CPU(s), and {fits} such worker(s) fit on this Ray's "
                f"{int(sum(node_cpus))} CPU(s); running {fits}")
        return fits, cpus, note
    return requested, cpus, None


def threads_note(spec: WorkerSpec) -> str | None:
    """What to tell a user whose workers will each spread over several threads (a PyTorch model),
    or None."""
    if is_exported(spec.model_dir) or spec.torch_threads <= 1:
        return None
    return (f"each Ray worker runs this PyTorch model on {spec.torch_threads} threads, so that it writes exactly what the "
            "local engine writes; `defectlens export` the model to run one worker per core")


class InspectionWorker:
    """One Ray actor: loads the model once, then inspects and writes batch after batch."""

    def __init__(self, spec: WorkerSpec):
        from defectlens.engine.local import load_for_inspection

        self.spec = spec
        self.load_error: str | None = None
        """Why the model could not be loaded here (said by :meth:`ready`), or None. Kept, not raised:
        an actor whose constructor raises dies, and its batches were retried as a killed worker's."""
        try:
            os.chdir(spec.cwd)
            if code_fingerprint() != spec.code:
                raise ConfigError(f"the Ray worker on {socket.gethostname()} runs other defectlens code ({defectlens.__file__}) "
                                  "than the command", None, "install the same defectlens on every node, then restart the cluster")
            torch.set_num_threads(worker_thread_count(spec))
            self.inspector, self.analysis = load_for_inspection(
                spec.model_dir, spec.taxonomy, spec.cue, spec.examples, spec.k, spec.writer, spec.threshold
            )
        except Exception as exc:  # noqa: BLE001 - said by ready(), whatever it is
            self.load_error = str(exc) or exc.__class__.__name__

    def ready(self) -> str | None:
        """None when the model is loaded, else why not."""
        return self.load_error

    def run(self, paths: list[Path], names: dict[Path, str]) -> Any:
        """Inspect and write one batch; returns its :class:`~defectlens.engine.local.BatchOutcome`."""
        from defectlens.engine.local import inspect_and_write

        if self.load_error:
            raise ConfigError(f"the Ray worker could not load the model: {self.load_error}")

        fault = os.environ.get(FAULT_ENV)
        if fault and any(p.name == fault for p in paths):
            # Die where a killed worker would, mid-batch: the images before that one written.
            before = paths[: [p.name for p in paths].index(fault)]
            if before:
                inspect_and_write(self.inspector, self.analysis, before, names, self.spec.output, self.spec.overlay_format)
            os._exit(1)  # no exception, no cleanup
        with collected_warnings() as caught:
            outcome = inspect_and_write(self.inspector, self.analysis, paths, names, self.spec.output, self.spec.overlay_format)
        outcome.image_warnings = [str(w) for w in caught if isinstance(w, DefectlensWarning)]
        return outcome


def _died(paths: list[Path], attempts: int) -> list[Failure]:
    return [
        Failure(str(p), f"{p}: not inspected — the Ray worker inspecting its batch died {attempts} time(s) — fix: check the worker's logs "
                f"(memory, a killed node) and run again with --resume", of_batch=True)
        for p in paths
    ]


AUTH_HINT = ("a cluster started by `ray start` checks a token: run with RAY_AUTH_MODE=token and the head's token "
             "(its ~/.ray/auth_token copied here, or RAY_AUTH_TOKEN)")
"""Measured with Ray 2.60: `ray start --head` turns token authentication on, while a client left at
its default mode fails with "Failed to connect to Ray cluster", which does not say why."""


def ray_start_hint(address: str | None) -> str:
    """The fix for a Ray that could not be started or reached at ``address`` (None: this machine)."""
    if address:
        return f"check --address (`ray status` on the head node shows it); {AUTH_HINT}"
    return f"on an overloaded machine start Ray first (`ray start --head`) and pass its address with --address; {AUTH_HINT}"


ADDRESS_TIMEOUT_SECONDS = 5.0
"""How long `--address` is given to accept a connection before the run is refused."""


def require_listening(address: str) -> None:
    """Refuse, in seconds, a cluster ``address`` (``host:port``, ``ray://host:port``) where nothing
    accepts a connection: Ray itself retried for ever, its "Failed to connect" lines under a
    progress bar stuck at 0 (probe 2026-12-05). ``auto`` and addresses without a port are left to Ray."""
    target = address.split("://", 1)[-1]
    host, _, port = target.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=ADDRESS_TIMEOUT_SECONDS).close()
    except OSError as exc:
        raise ConfigError(f"nothing answers at {address} ({exc.strerror or exc.__class__.__name__})", None, ray_start_hint(address)) from None


def run_on_ray(
    spec: WorkerSpec,
    batches: list[list[Path]],
    names: dict[Path, str],
    options: RayOptions,
    record: Callable[[Any], None],
    say: Callable[[str], None] | None = None,
) -> None:
    """Inspect ``batches`` on a pool of Ray actors, calling ``record`` with each batch's
    :class:`~defectlens.engine.local.BatchOutcome` as it finishes (in finishing order), and
    ``say`` with a note for the user (fewer workers than asked for)."""
    require_ray()
    import ray
    from ray.exceptions import RayActorError, RayTaskError

    from defectlens.engine.local import BatchOutcome, completed_inspection

    started = not ray.is_initialized()
    # Ray puts its own SIGTERM handler in at init (a stack dump and abort): the command's own, which
    # stops as Ctrl-C does, is put back after it.
    on_terminate = signal.getsignal(signal.SIGTERM)
    if started:
        if options.address:
            require_listening(options.address)
        try:
            # Ray's INFO lines ("Started a local Ray instance") broke into inspect's progress lines.
            if options.address:
                ray.init(address=options.address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            else:
                # Ray's notice that the Ray it starts checks a token ("set RAY_AUTH_MODE=disabled to opt out")
                # came with every run and read as advice to turn the check off: the check stays, unsaid.
                logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
                # The machine's own CPUs, whatever --workers asks: told it had as many as asked,
                # Ray started eight workers on two cores (3.4 GB), and plan_pool's cut never came.
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        except Exception as exc:  # noqa: BLE001 - ray.init raises a bare Exception when its node times out starting
            where = options.address or "this machine"
            raise ConfigError(
                f"cannot start or reach Ray on {where} ({str(exc).splitlines()[0][:160]})",
                None,
                ray_start_hint(options.address),
            ) from None
    with contextlib.suppress(ValueError, TypeError):  # not the main thread, or a handler Python did not set
        signal.signal(signal.SIGTERM, on_terminate)
    idle: list[Any] = []
    running: dict[bytes, tuple[Any, Any, list[Path], int]] = {}
    try:
        node_cpus = [float(n["Resources"].get("CPU", 0)) for n in ray.nodes() if n.get("Alive")] or [1.0]
        n_workers, cpus, note = plan_pool(options.workers, node_cpus, worker_cpus(spec))
        if note and say:
            say(note)
        if n_workers > len(batches) and options.workers and say:
            say(f"--workers {options.workers}: the images make {len(batches)} batch(es) of up to {max(map(len, batches), default=0)}, "
                f"one a worker at a time; running {len(batches)}")
        n_workers = max(1, min(n_workers, len(batches)))
        fault = {FAULT_ENV: os.environ[FAULT_ENV]} if os.environ.get(FAULT_ENV) else {}
        options_ = {"runtime_env": {"env_vars": fault}} if fault else {}
        # As many CPUs as the worker's threads (Ray also sets OMP_NUM_THREADS to it), so N actors
        # on a node use its cores instead of each spreading threads over every core.
        actor_class = ray.remote(num_cpus=cpus, max_restarts=0)(InspectionWorker).options(**options_)
        idle = [actor_class.remote(spec) for _ in range(n_workers)]
        # A worker that cannot load the model (a path its node does not see, other code) stops the
        # run here, in its own words: each batch had failed twice as a "died" worker's.
        if problem := next((p for p in ray.get([a.ready.remote() for a in idle]) if p), None):
            raise ConfigError(f"a Ray worker could not load the model: {problem}", None,
                              "give the model, inputs and output at paths every node sees (one machine, or a shared filesystem)")
        queue: deque[tuple[list[Path], int]] = deque((b, 0) for b in batches if b)
        # running is keyed by the ref's id: the ref ray.wait returns need not hash like the one submitted.
        while queue or running:
            while idle and queue:
                batch, attempt = queue.popleft()
                actor = idle.pop()
                ref = actor.run.remote(batch, {p: names[p] for p in batch})
                running[ref.binary()] = (ref, actor, batch, attempt)
            done, _ = ray.wait([entry[0] for entry in running.values()], num_returns=1)
            ref, actor, batch, attempt = running.pop(done[0].binary())
            try:
                outcome = ray.get(ref)
            except RayActorError:
                # The worker died (this batch is the only one it held): a fresh one takes its place.
                ray.kill(actor, no_restart=True)
                idle.append(actor_class.remote(spec))
                if attempt < RETRIES:
                    queue.append((batch, attempt + 1))
                    if say:  # said, not only in Ray's long "worker died" text
                        say(f"a Ray worker died inspecting a batch of {len(batch)} image(s); the batch is given to a fresh worker")
                else:
                    # Images the worker finished before it died are results, not failures (they
                    # were listed as not inspected beside their complete files).
                    finished = [p for p in batch if completed_inspection(spec.output, names[p], p) is not None]
                    left = [p for p in batch if p not in finished]
                    record(BatchOutcome(written=finished, failures=_died(left, attempt + 1), n_inputs=len(batch)))
                continue
            except RayTaskError as exc:
                # A Python error inside the worker (a bug, not a death): the batch fails with it.
                message = str(exc.cause if hasattr(exc, "cause") else exc).splitlines()[0][:200]
                failures = [Failure(str(p), f"{p}: not inspected — worker error: {message}", of_batch=True) for p in batch]
                record(BatchOutcome(failures=failures, n_inputs=len(batch)))
                idle.append(actor)
                continue
            for message in outcome.image_warnings:
                warn_caller(message, DefectlensWarning)  # said as the local engine says them
            record(outcome)
            idle.append(actor)
    finally:
        # The pool's CPUs go back to Ray (on a cluster, or a Ray the caller started, that outlives this run).
        for actor in idle + [entry[1] for entry in running.values()]:
            ray.kill(actor, no_restart=True)
        if started:
            ray.shutdown()
