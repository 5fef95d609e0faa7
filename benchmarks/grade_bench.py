"""Measure grading speed side by side in one run: cold grade, warm grade, the suite alone.

    python benchmarks/grade_bench.py [--exercise rest-crud] [--rounds 3]

cold  = the first grade of a fresh workspace (no image of the app yet: a full build);
warm  = grading the same workspace again (the build is a cache hit);
suite = the grader suite's own time inside a warm grade (pytest against the live stack).
Also times `bb --help` against a bare `python -c pass`, the floor for any Python CLI.
Writes a JSON summary to benchmarks/results/ and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _timed(command: list[str], **kwargs: object) -> tuple[float, subprocess.CompletedProcess[str]]:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)  # type: ignore[call-overload]
    return time.perf_counter() - began, done


def _grade(workspace: Path, env: dict[str, str]) -> tuple[float, dict[str, object]]:
    elapsed, done = _timed([sys.executable, "-m", "bb", "grade", "--json"], cwd=workspace, env=env)
    if done.returncode != 0:
        raise SystemExit(f"grading failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    return elapsed, json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="rest-crud")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from bb.pack.manifest import load_pack
    from bb.pack.scaffold import lay_solution, new_project
    from bb.stack.engine import Engine
    from bb.stack.lifecycle import app_image_tag

    pack = load_pack(ROOT)
    exercise = pack.exercise(args.exercise)
    engine = Engine.connect()
    scratch = Path(tempfile.mkdtemp(prefix="bb-bench-"))
    env = {**os.environ, "BB_HOME": str(scratch / "home")}
    samples: dict[str, list[float]] = {
        "cold": [],
        "warm": [],
        "suite": [],
        "help": [],
        "python": [],
    }
    try:
        for round_ in range(args.rounds):
            workspace = scratch / f"ws{round_}"
            new_project(pack, exercise, workspace)
            lay_solution(exercise, workspace)
            engine.remove_image(app_image_tag(exercise, workspace))
            cold, _ = _grade(workspace, env)
            warm, document = _grade(workspace, env)
            samples["cold"].append(cold)
            samples["warm"].append(warm)
            samples["suite"].append(float(document["timings"]["checks"]))  # type: ignore[index]
            engine.remove_image(app_image_tag(exercise, workspace))
            for _ in range(5):
                samples["help"].append(_timed([sys.executable, "-m", "bb", "--help"], env=env)[0])
                samples["python"].append(_timed([sys.executable, "-c", "pass"])[0])
    finally:
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)

    median = {name: statistics.median(values) for name, values in samples.items()}
    summary = {
        "exercise": args.exercise,
        "rounds": args.rounds,
        "median_seconds": {k: round(v, 3) for k, v in median.items()},
        "ratios": {
            "cold/warm": round(median["cold"] / median["warm"], 2),
            "warm/suite": round(median["warm"] / median["suite"], 2),
            "help/python": round(median["help"] / median["python"], 2),
        },
        "samples": {k: [round(x, 3) for x in v] for k, v in samples.items()},
    }
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / f"grade-{args.exercise}.json").write_text(json.dumps(summary, indent=2))
    print(f"{'what':<28}{'median (s)':>12}")
    for label, key in (
        ("cold grade", "cold"),
        ("warm grade", "warm"),
        ("grader suite (in warm)", "suite"),
        ("bb --help", "help"),
        ("python -c pass", "python"),
    ):
        print(f"{label:<28}{median[key]:>12.3f}")
    for name, ratio in summary["ratios"].items():  # type: ignore[union-attr]
        print(f"{name:<28}{ratio:>12.2f}x")


if __name__ == "__main__":
    main()
