"""Measure the learner loop side by side in one run, and report the ratios the goals name.

    python benchmarks/grade_bench.py [--exercise rest-crud] [--rounds 3]

help   = `bb --help` against `python -c "import typer"` (alternated, 10 each);
floor  = what a cold grade cannot avoid: a Postgres container started until it accepts a
         connection (measured here, with the course image) plus the grader suite's own time;
cold   = `bb grade --cold` of the reference solution: services started fresh (the app's image
         is a build-cache hit, as on any grade after the first);
warm   = `bb grade` again: the services are warm (a fresh database, not a fresh server); its
         stages are reported one by one;
watch  = `bb watch`: from a file save to the regrade's first check line on screen, and to its
         whole result.
Writes benchmarks/results/loop-<exercise>.json and prints a table of medians and ratios.
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _timed(command: list[str], **kwargs: Any) -> tuple[float, subprocess.CompletedProcess[str]]:
    began = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, **kwargs)
    return time.perf_counter() - began, done


def _grade(workspace: Path, env: dict[str, str], *extra: str) -> tuple[float, dict[str, Any]]:
    elapsed, done = _timed(
        [sys.executable, "-m", "bb", "grade", "--json", *extra], cwd=workspace, env=env
    )
    if done.returncode != 0:
        raise SystemExit(f"grading failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    document: dict[str, Any] = json.loads(done.stdout)
    return elapsed, document


def _postgres_floor(pack: Any, exercise: Any) -> float:
    """A container of the exercise's Postgres service, started until it answers."""
    import secrets

    from bb.stack.engine import ContainerSpec, Engine, free_port
    from bb.stack.probes import wait_ready

    engine = Engine.connect()
    (name, service), *_ = exercise.services.items()
    grade = f"bench{secrets.token_hex(3)}"
    began = time.perf_counter()
    try:
        engine.create_network(f"bb-{grade}", grade)
        port = free_port()
        container = engine.run(
            ContainerSpec(
                name=f"bb-{grade}-{name}",
                image=pack.image_ref(service.image),
                environment=service.environment,
                command=service.command,
                ports={service.port: port},
                tmpfs=tuple(service.tmpfs),
            ),
            network=f"bb-{grade}",
            grade_id=grade,
        )
        reason, _ = wait_ready(
            service.ready, port, exited=lambda: engine.has_exited(container),
            deadline=time.monotonic() + 120,
        )  # fmt: skip
        if reason is not None:
            raise SystemExit(f"Postgres did not start: {reason}")
        return time.perf_counter() - began
    finally:
        engine.remove_grade(grade)


def _watch_latency(workspace: Path, env: dict[str, str], edit: Path) -> tuple[float, float]:
    """Start `bb watch`, wait for its first result, save ``edit``; time the first check line
    of the regrade on screen, and its whole result."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bb", "watch", "--no-poll"],
        cwd=workspace, env={**env, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    assert process.stdout is not None

    def wait_for(text: str) -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            if text in line:
                return
        raise SystemExit("bb watch ended early")

    try:
        wait_for("Watching for saves")
        time.sleep(0.5)
        saved = time.perf_counter()
        edit.write_text(edit.read_text() + "\n")
        wait_for("✓ passed")  # the regrade's first line: its build
        first = time.perf_counter() - saved
        wait_for("passed in")  # the summary line of the result
        return first, time.perf_counter() - saved
    finally:
        import signal

        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="rest-crud")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from bb.pack.manifest import load_pack
    from bb.pack.scaffold import lay_solution, new_project

    pack = load_pack(ROOT)
    exercise = pack.exercise(args.exercise)
    scratch = Path(tempfile.mkdtemp(prefix="bb-bench-"))
    env = {**os.environ, "BB_HOME": str(scratch / "home")}
    samples: dict[str, list[float]] = {}

    def add(name: str, value: float) -> None:
        samples.setdefault(name, []).append(value)

    workspace = scratch / "project"
    new_project(pack, exercise, workspace)
    lay_solution(exercise, workspace)
    try:
        _grade(workspace, env, "--cold")  # builds the app's image once: later builds are cached
        for _ in range(args.rounds):
            add("postgres floor", _postgres_floor(pack, exercise))
            cold, document = _grade(workspace, env, "--cold")
            add("cold grade", cold)
            add("suite in cold", float(document["timings"]["checks"]))
            _grade(workspace, env)  # makes the services warm
            warm, document = _grade(workspace, env)
            add("warm grade", warm)
            timings = document["timings"]
            add("suite in warm", float(timings["checks"]))
            for stage in ("build", "services", "migrate", "app", "teardown"):
                add(f"  warm: {stage}", float(timings.get(stage, 0.0)))
            add("warm minus suite", warm - float(timings["checks"]))
            first, whole = _watch_latency(workspace, env, workspace / "app" / "main.py")
            add("watch: save to first check line", first)
            add("watch: save to whole result", whole)
            add("suite in watch", float(document["timings"]["checks"]))
        for _ in range(10):
            add("bb --help", _timed([sys.executable, "-m", "bb", "--help"], env=env)[0])
            add("import typer", _timed([sys.executable, "-c", "import typer"])[0])
    finally:
        subprocess.run([sys.executable, "-m", "bb", "down"], cwd=workspace, env=env,
                       capture_output=True)  # fmt: skip
        import shutil

        shutil.rmtree(scratch, ignore_errors=True)

    median = {name: statistics.median(values) for name, values in samples.items()}
    floor = median["postgres floor"] + median["suite in cold"]
    ratios = {
        "bb --help / import typer (goal <= 1.5)": median["bb --help"] / median["import typer"],
        "cold / (postgres + suite) (goal <= 1.15)": median["cold grade"] / floor,
        "warm - suite, seconds (goal <= 1.0)": median["warm minus suite"],
        "watch: save to first line, s (goal <= 1.5)": median["watch: save to first check line"],
        "watch: whole - suite, seconds": median["watch: save to whole result"]
        - median["suite in watch"],
    }
    summary = {
        "exercise": args.exercise,
        "rounds": args.rounds,
        "load_average": os.getloadavg(),
        "median_seconds": {k: round(v, 3) for k, v in median.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "samples": {k: [round(x, 3) for x in v] for k, v in samples.items()},
    }
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / f"loop-{args.exercise}.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"{'what':<44}{'median':>10}")
    for name, value in median.items():
        print(f"{name:<44}{value:>10.3f}")
    for name, value in ratios.items():
        print(f"{name:<44}{value:>10.3f}")
    print(f"load average: {summary['load_average']}")


if __name__ == "__main__":
    main()
