"""Measure class grading side by side in one run: serial, --jobs 2, --jobs 4, two Celery workers.

    python benchmarks/class_bench.py [--exercise rest-crud] [--students 20]

The class mixes reference solutions (passing) and untouched starters (failing). The Celery run
needs redis-server and the cluster extra; it runs two `bb worker`s of concurrency 1 and sends
with --jobs 2, so it compares with the local --jobs 2 at the same concurrency. Writes a JSON
summary to benchmarks/results/ and prints a table with the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def make_class(folder: Path, exercise_id: str, students: int) -> None:
    from bb.pack.manifest import load_pack
    from bb.pack.scaffold import lay_solution, new_project

    pack = load_pack(ROOT)
    exercise = pack.exercise(exercise_id)
    for number in range(students):
        project = folder / f"student{number:02d}"
        new_project(pack, exercise, project)
        if number % 5 < 3:  # three in five pass
            lay_solution(exercise, project)


def grade(submissions: Path, exercise: str, env: dict[str, str], *extra: str) -> float:
    out = Path(tempfile.mkdtemp(prefix="bb-bench-out-"))
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bb", "class", "grade", str(submissions), "-e", exercise,
         "--out", str(out), "--json", *extra],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    elapsed = time.perf_counter() - began
    shutil.rmtree(out, ignore_errors=True)
    if done.returncode != 0:
        raise SystemExit(f"class grading failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return elapsed


def with_workers(env: dict[str, str], scratch: Path) -> tuple[str, list[subprocess.Popen[bytes]]]:
    from bb.stack.engine import free_port

    port = free_port()
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
         "--appendonly", "no", "--dir", str(scratch)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    time.sleep(1.0)
    broker = f"redis://127.0.0.1:{port}/0"
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bb", "worker", "--broker", broker, "--name", f"bench{n}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )  # fmt: skip
        for n in (1, 2)
    ]
    time.sleep(5.0)  # the workers connect
    return broker, [redis, *workers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="rest-crud")
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--no-celery", action="store_true")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bb-class-bench-"))
    env = {**os.environ, "BB_HOME": str(scratch / "home")}
    submissions = scratch / "submissions"
    make_class(submissions, args.exercise, args.students)
    times: dict[str, float] = {}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for jobs in (1, 2, 4):
            times[f"jobs {jobs}"] = grade(submissions, args.exercise, env, "--jobs", str(jobs))
        if not args.no_celery and shutil.which("redis-server"):
            broker, processes = with_workers(env, scratch)
            times["celery, 2 workers"] = grade(
                submissions, args.exercise, env, "--jobs", "2", "--broker", broker
            )
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(60)
        shutil.rmtree(scratch, ignore_errors=True)

    serial = times["jobs 1"]
    print(f"{args.students} submissions of {args.exercise} (3 in 5 pass)")
    print(f"{'how':<20} {'wall s':>8} {'vs serial':>10}")
    for how, seconds in times.items():
        print(f"{how:<20} {seconds:>8.1f} {seconds / serial:>10.2f}")
    if "celery, 2 workers" in times:
        ratio = times["celery, 2 workers"] / times["jobs 2"]
        print(f"celery / local at the same concurrency (2): {ratio:.2f}")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    (results / f"class-{stamp}.json").write_text(
        json.dumps(
            {"exercise": args.exercise, "students": args.students, "seconds": times}, indent=2
        )
    )


if __name__ == "__main__":
    main()
