"""Throughput of inspection: PyTorch vs ONNX Runtime (vs OpenVINO), batch 1 and 8, a per-stage
profile, and the Ray engine with 1 and 2 workers.

Fits the default model (memory bank, 256-px canvas) on synthetic brushed-metal textures and
writes a folder of test images (a quarter with a bright square defect) — or, with ``--category``,
fits on that category's normal images (``--normals`` of them, a seeded draw) and inspects a seeded
draw of its test images (every type, good ones included) — exports the model, then measures:

* end to end per runtime and batch size: decode + place + encode + search + maps + decision,
  images/s and ms/image (the files `inspect` writes are profiled separately below);
* the stages of one batch-8 pass on each runtime: decode, place, encode, search (every bank the
  detector has: two by default), maps (the rest of scoring: upsample, smooth, relative to each
  position, banks averaged), regions and decision, report, write;
* `defectlens inspect` on the folder with the local engine and with --engine ray --workers 1 / 2
  (wall time of the whole command, Ray start-up and model loading included), each also on one
  batch of the folder to measure that fixed cost and the rate after it; and whether each engine's
  outputs are byte for byte the local engine's.

The machine's load average is recorded before and after: numbers on shared cores are only
comparable within one run. Writes ``throughput.{json,md}`` (``--name``) in ``--out`` (default
``benchmarks/results``), with the run's record.

    nice -n 19 python benchmarks/throughput.py [--images 48] [--ray-images 96] [--repeats 2] [--ray-running]
        [--category magnetic_tile [--data ../shared/datasets]] [--out DIR]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))

from defectlens import Inspector, InspectorSettings  # noqa: E402
from defectlens.encode import EncodedBatch  # noqa: E402
from defectlens.engine.analysis import analyse, prepare_analysis  # noqa: E402
from defectlens.engine.local import output_contents, write_inspection  # noqa: E402
from defectlens.errors import DatasetLayoutError  # noqa: E402
from defectlens.export import export_model  # noqa: E402
from defectlens.io import load_category, load_image  # noqa: E402
from defectlens.io.dataset import folder_any_case  # noqa: E402

sys.path.insert(0, str(HERE))
from common import (  # noqa: E402 - the benchmarks' shared module
    add_data_argument,
    finish_record,
    has_normal_images,
    require_categories,
    require_output_folder,
    run_record,
)


def texture(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Grey brushed metal: vertical streaks plus fine noise (as the tests' fixture)."""
    base = 120 + rng.normal(0, 12, size=(1, w)).repeat(h, axis=0) + rng.normal(0, 6, size=(h, w))
    return np.clip(base, 0, 255).astype(np.uint8)


def make_images(folder: Path, n: int, seed: int, side: int = 256) -> list[Path]:
    """``n`` PNGs of ``side`` px; every fourth has a bright square."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        img = texture(rng, side, side)
        if i % 4 == 0:
            y, x = rng.integers(20, side - 60, size=2)
            img[y : y + 24, x : x + 24] = 250
        path = folder / f"{i:04d}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def category_images(test: list[Path], folder: Path, n: int, seed: int) -> list[Path]:
    """``n`` links in ``folder`` to a seeded draw of a category's test images, named ``<type>_<name>``
    (test folders of different types may hold the same file name); drawn again, with a suffix, when
    the category has fewer than ``n``."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    links = []
    for i in range(n):
        if i % len(test) == 0:
            order = rng.permutation(len(test))
        source = test[order[i % len(test)]]
        repeat = f"_{i // len(test)}" if i >= len(test) else ""
        link = folder / f"{source.parent.name}_{source.stem}{repeat}{source.suffix}"
        link.symlink_to(source)
        links.append(link)
    return links


def load_average() -> list[float]:
    """1/5/15-minute load average."""
    return [round(x, 2) for x in os.getloadavg()]


def end_to_end(inspector: Inspector, paths: list[Path], batch: int, repeats: int) -> dict:
    """Best of ``repeats`` passes over ``paths`` in batches of ``batch`` (decode to decision)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(0, len(paths), batch):
            inspector.inspect_batch(paths[i : i + batch])
        best = min(best, time.perf_counter() - start)
    return {"images_per_s": round(len(paths) / best, 2), "ms_per_image": round(1000 * best / len(paths), 1)}


def profile(inspector: Inspector, paths: list[Path], out: Path, batch: int = 8) -> dict[str, float]:
    """ms per image of each stage, over ``paths`` in batches of ``batch`` (memory-bank model)."""
    det = inspector.detector
    enc = det.encoder  # type: ignore[attr-defined]
    analysis = prepare_analysis(None, None, 5, "template")
    stages = dict.fromkeys(("decode", "place", "encode", "search", "maps", "regions", "report", "write"), 0.0)

    def timed(stage: str, fn):
        t = time.perf_counter()
        value = fn()
        stages[stage] += time.perf_counter() - t
        return value

    # Every bank the detector searches (the default has two: 3 x 3 and 1 x 1 neighbourhoods).
    banks = [det, *getattr(det, "neighbours", [])]
    for i in range(0, len(paths), batch):
        chunk = paths[i : i + batch]
        images = timed("decode", lambda c=chunk: [load_image(p) for p in c])
        x, placements = timed("place", lambda im=images: enc.prepare(im, enc.config.canvas))
        with torch.inference_mode():
            features, levels = timed("encode", lambda x=x: enc.network(x))
        encoded = EncodedBatch(features, placements, enc.config.canvas, levels)

        def search_every_bank(e: EncodedBatch = encoded) -> None:
            for bank in banks:
                own = bank._own_view(e)  # the bank's own neighbourhood, fused from the levels
                c = own.features.shape[1]
                bank.index.search(own.features.permute(0, 2, 3, 1).reshape(-1, c).contiguous().numpy(), bank.config.n_neighbours)

        searched = stages["search"]
        timed("search", search_every_bank)
        # Scoring searches again; the maps stage is what it spends beyond the search just timed
        # (maps upsampled, smoothed, made relative to each position and averaged, frame check).
        results = timed("maps", lambda e=encoded: det.score_encoded(e))
        stages["maps"] -= stages["search"] - searched
        for path, image, result in zip(chunk, images, results, strict=True):
            inspection = timed("regions", lambda r=result, p=path: inspector.decide(r, str(p)))
            types = timed("report", lambda im=image, ins=inspection, p=path: analyse(analysis, im, ins, out, p.stem, None))
            timed("write", lambda im=image, ins=inspection, p=path, t=types: write_inspection(ins, im, out, p.stem, inspector, {
                "region_types": [x.to_json() for x in t], "region_labels": [x.defect_type for x in t]}))
    return {k: round(1000 * v / len(paths), 2) for k, v in stages.items()}


STARTUP_IMAGES = 16
"""Images of the one-batch run that measures an engine's fixed cost (one `inspect` batch)."""


RAY_PORT = 6390
"""Port of the Ray the benchmark starts with --ray-running."""


def start_ray(port: int) -> str:
    """Start Ray on this machine as a cluster's head node (`ray start --head`) and return its address.

    `ray start` turns token authentication on; this process and the commands it starts connect with
    RAY_AUTH_MODE=token (the token is in ~/.ray/auth_token)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    ray = str(Path(sys.executable).with_name("ray"))
    started = subprocess.run([ray, "start", "--head", "--port", str(port), f"--num-cpus={os.cpu_count()}", "--include-dashboard=false",
                              "--disable-usage-stats"], check=True, capture_output=True, text=True)
    atexit.register(subprocess.run, [ray, "stop"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The head listens on the node's address, which `ray start` prints ("ray start --address='IP:PORT'").
    found = re.search(r"--address='([^']+)'", started.stdout + started.stderr)
    return found.group(1) if found else f"127.0.0.1:{port}"


def run_cli(model: Path, folder: Path, out: Path, extra: list[str]) -> float:
    """Wall seconds of `defectlens inspect` in a child process (its import time included)."""
    cmd = [sys.executable, "-c", "from defectlens.cli import app; app()", "inspect", str(model), str(folder), "-o", str(out), *extra]
    env = {**os.environ, "PYTHONPATH": str(HERE.parent / "src")}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    """Run every measurement and write the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=48, help="images per runtime measurement")
    ap.add_argument("--ray-images", type=int, default=96, help="images in the folder the engines inspect (0: skip Ray)")
    ap.add_argument("--ray-running", action="store_true",
                    help="also run the Ray engine on a Ray started beforehand (`ray start --head`, as a cluster runs), stopped afterwards")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--normals", type=int, default=20,
                    help="normal images the model is fitted on (30 or more: with the frame check a model fitted on a line's images has)")
    ap.add_argument("--name", default="throughput", help="results file stem in --out")
    ap.add_argument("--category", default=None,
                    help="fit on this shared category's normal images and inspect its test images instead of synthetic textures")
    add_data_argument(ap)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    test_images: list[Path] = []
    if args.category:
        args.category = require_categories(args.data, [args.category], lambda p: has_normal_images(p) and folder_any_case(p, "test").is_dir())[0]
        # Checked before anything is fitted: a wrong name or path fails at once.
        try:
            category = load_category(args.data / args.category)
            train = category.require_train_good()
        except DatasetLayoutError as exc:
            sys.exit(f"{args.category}: {exc}")
        test_images = [item.path for item in category.test]
        if not test_images:
            sys.exit(f"{args.category}: no test images in {category.root / 'test'}")
    out = require_output_folder(args.out)
    record = run_record()
    load_before = load_average()
    work = Path(tempfile.mkdtemp(prefix="defectlens-throughput-"))
    # About 400 MB of model, export, images and outputs a run: removed however the run ends
    # (sixty runs had left 24 GB behind in the temporary folder).
    atexit.register(shutil.rmtree, work, True)
    rng = np.random.default_rng(0)
    if args.category:
        drawn = sorted(rng.choice(len(train), min(args.normals, len(train)), replace=False))
        normals = [load_image(train[i]) for i in drawn]
    else:
        normals = [np.stack([texture(rng, 256, 256)] * 3, -1) for _ in range(args.normals)]
    inspector = Inspector.fit(normals, InspectorSettings())  # the default model: memory bank, 256 px
    inspector.save(work / "model")
    runtimes = ["torch", "onnxruntime"]
    export_model(work / "model", work / "onnx")
    try:
        import openvino  # noqa: F401

        runtimes.append("openvino")
    except ImportError:
        pass
    images = work / "images"
    paths = category_images(test_images, images, args.images, seed=1) if args.category else make_images(images, args.images, seed=1)
    results: dict = {"category": args.category or "synthetic textures",
                     "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                                 "python": platform.python_version(), "torch": torch.__version__,
                                 "torch_threads": torch.get_num_threads()},
                     "images": args.images, "normals": args.normals, "end_to_end": {}, "profile_ms_per_image": {}}
    for runtime in runtimes:
        model = Inspector.load(work / "model") if runtime == "torch" else Inspector.load(work / "onnx", runtime=runtime)
        model.inspect_batch(paths[:8])  # warm-up: first-call allocations and graph compilation
        for batch in (1, 8):
            results["end_to_end"][f"{runtime} batch {batch}"] = end_to_end(model, paths, batch, args.repeats)
            print(runtime, batch, results["end_to_end"][f"{runtime} batch {batch}"], flush=True)
        results["profile_ms_per_image"][runtime] = profile(model, paths, work / f"profile-{runtime}")
        print(runtime, results["profile_ms_per_image"][runtime], flush=True)
    if args.ray_images:
        folder, small = work / "folder", work / "folder-small"
        if args.category:
            category_images(test_images, folder, args.ray_images, seed=2)
        else:
            make_images(folder, args.ray_images, seed=2)
        small.mkdir()
        for path in sorted(folder.iterdir())[:STARTUP_IMAGES]:
            (small / path.name).symlink_to(path)
        engines: dict[str, dict] = {}

        def measure(slug: str, name: str, extra: list[str]) -> None:
            seconds = run_cli(work / "onnx", folder, work / f"out-{slug}", extra)
            # The same command on one batch: start-up, model loading and the final summary, so
            # the rest is the engine's running rate.
            fixed = run_cli(work / "onnx", small, work / f"out-{slug}-small", extra)
            engines[name] = {"seconds": round(seconds, 1), "images_per_s": round(args.ray_images / seconds, 2),
                             "one_batch_seconds": round(fixed, 1),
                             # Too few images, or timings noisier than the difference: no rate, rather than a wild one.
                             "after_start_images_per_s": (round((args.ray_images - STARTUP_IMAGES) / (seconds - fixed), 2)
                                                          if args.ray_images > 2 * STARTUP_IMAGES and seconds > fixed + 1.0 else None),
                             "outputs_identical_to_local": output_contents(work / "out-local") == output_contents(work / f"out-{slug}")}
            print(name, engines[name], flush=True)

        measure("local", "local", [])
        for n in (1, 2):
            measure(f"ray{n}", f"ray {n} worker(s)", ["--engine", "ray", "--workers", str(n)])
        if args.ray_running:
            # Started only now: with a Ray running, the runs above would have joined it.
            address = start_ray(RAY_PORT)
            for n in (1, 2):
                measure(f"ray{n}-running", f"ray {n} worker(s), Ray already running", ["--engine", "ray", "--workers", str(n), "--address", address])
        results["engines"] = engines
        results["engines_images"] = args.ray_images
    results["load_average_before"], results["load_average_after"] = load_before, load_average()
    results["run"] = finish_record(record)
    (out / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# Throughput ({results['machine']['cpus']} CPUs, load {load_before} → {results['load_average_after']}; "
             f"model fitted on {len(normals)} normal images; {results['category']})", "",
             "| runtime, batch | images/s | ms/image |", "|---|---|---|"]
    lines += [f"| {k} | {v['images_per_s']} | {v['ms_per_image']} |" for k, v in results["end_to_end"].items()]
    stages = list(next(iter(results["profile_ms_per_image"].values())))
    lines += ["", "| stage (ms/image, batch 8) | " + " | ".join(results["profile_ms_per_image"]) + " |", "|---" * (1 + len(runtimes)) + "|"]
    lines += [f"| {s} | " + " | ".join(str(p[s]) for p in results["profile_ms_per_image"].values()) + " |" for s in stages]
    if "engines" in results:
        lines += ["", f"| engine ({results['engines_images']} images) | whole command s | images/s | one batch s "
                  "| images/s after start-up | outputs as local |", "|---|---|---|---|---|---|"]
        keys = ["seconds", "images_per_s", "one_batch_seconds", "after_start_images_per_s", "outputs_identical_to_local"]
        lines += [f"| {k} | " + " | ".join(str(v[key]) for key in keys) + " |" for k, v in results["engines"].items()]
    (out / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
