"""``python -m tools.bench [--quick] [--out docs/benchmarks-peers.md] [--only cam,transport,pipeline,limits]``."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
import traceback

from . import REPO_ROOT, machine_info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.bench", description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes and few rounds (a smoke run, ~2 min)")
    ap.add_argument("--out", default="docs/benchmarks-peers.md", help="markdown file to write")
    ap.add_argument("--only", default="cam,transport,pipeline,limits", help="comma-separated benches to run")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    command = "python -m tools.bench" + (" --quick" if args.quick else "") + (
        f" --out {args.out}" if args.out != "docs/benchmarks-peers.md" else "") + (
        f" --only {args.only}" if args.only != ap.get_default("only") else "")
    started = datetime.datetime.now().isoformat(timespec="seconds")
    t0 = time.time()
    work = os.path.join(REPO_ROOT, "runs", "bench")
    os.makedirs(work, exist_ok=True)
    results: dict = {"errors": {}}
    models: dict[str, str] = {}

    def section(name: str, fn) -> None:
        print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t = time.time()
        try:
            results[name] = fn()
        except Exception:  # the entry point: one failing bench must not lose the others' tables
            results["errors"][name] = traceback.format_exc(limit=6)
            print(results["errors"][name], file=sys.stderr)
        print(f"[bench] {name} done in {time.time() - t:.0f} s", file=sys.stderr, flush=True)

    if "cam" in only or "limits" in only:
        from .cam import build_resnet18, export_resnet18

        path = os.path.join(work, "resnet18-gap.onnx")
        export_resnet18(build_resnet18()[1], path)
        models["resnet18 224×224"] = path
    if "cam" in only:
        from . import cam

        section("cam", lambda: cam.run(quick=args.quick, onnx_path=models["resnet18 224×224"]))
    if "transport" in only:
        from . import transport

        section("transport", lambda: transport.run(quick=args.quick))
    if "pipeline" in only:
        from . import pipeline

        section("pipeline", lambda: pipeline.run(quick=args.quick, work_dir=work))
    if "limits" in only:
        from . import limits
        from .pipeline import ensure_model

        path, desc = ensure_model(work)
        models[("person-ir" if path.endswith("person-ir.onnx") else "tiny_gap (random)") + " 320×240"] = path
        section("limits", lambda: limits.run(models, quick=args.quick))

    from .report import render

    text = render(results, machine_info(), command, started, time.time() - t0)
    out = os.path.join(REPO_ROOT, args.out) if not os.path.isabs(args.out) else args.out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    with open(os.path.join(work, "results.json"), "w") as f:
        json.dump(results, f, indent=1, default=str)
    print(text)
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
