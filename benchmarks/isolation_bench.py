"""Measure what strict isolation costs: warm grades under each level, side by side.

    python benchmarks/isolation_bench.py [--exercise rest-crud] [--rounds 3]

Grades the exercise's reference solution in one workspace (one cold grade first, not counted,
so every counted build is a cache hit), then alternates standard and strict warm grades, so a
change in the machine's load hits both levels alike. Reports the median of the whole grade and
of each stage per level, and strict's overhead.

Then the relay alone: one small HTTP server published directly (standard), one behind the
relay on an internal network (strict), requests alternated between them, on new connections
(each one a relay fork) and on one kept-alive connection. Whole grades on a busy machine
vary by more than the relay costs; this shows its cost per request.

Writes a JSON summary to benchmarks/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LEVELS = ("standard", "strict")
STAGES = ("build", "services", "migrate", "app", "checks", "teardown")


def _grade(
    workspace: Path, level: str, env: dict[str, str], failures: list[str]
) -> tuple[float, dict[str, object]] | None:
    """One passing grade and its wall time, or None. A grade that fails (on a loaded machine
    the app can miss its readiness deadline) is noted in ``failures`` and tried again."""
    for _attempt in range(2):
        elapsed, done = _run_grade(workspace, level, env)
        if done.returncode == 0:
            return elapsed, json.loads(done.stdout)
        failed = [
            c["name"] for c in json.loads(done.stdout or "{}").get("checks", [])
            if c["status"] in ("failed", "error")
        ]  # fmt: skip
        failures.append(f"{level}: exit {done.returncode} {failed} {_first_message(done.stdout)}")
        print(f"  {level} grade failed ({failures[-1]}); retrying", flush=True)
    return None


def _first_message(stdout: str) -> str:
    """The message of the first check that did not pass (why a grade failed)."""
    checks = json.loads(stdout or "{}").get("checks", [])
    return next((c["message"][:200] for c in checks if c["status"] in ("failed", "error")), "")


def _run_grade(
    workspace: Path, level: str, env: dict[str, str]
) -> tuple[float, subprocess.CompletedProcess[str]]:
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "bb", "grade", "--json", "--isolation", level],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
    )
    return time.perf_counter() - began, done


def relay_overhead(engine: object, image: str, requests: int) -> dict[str, float]:
    """Median seconds per GET, direct and through the relay, new and kept-alive connections."""
    import secrets

    import httpx

    from bb.pack.manifest import HttpProbe, Readiness
    from bb.stack.engine import ContainerSpec, Engine, free_port
    from bb.stack.images import relay_image_tag
    from bb.stack.probes import wait_ready

    assert isinstance(engine, Engine)
    grade_id = secrets.token_hex(4)
    serve = [
        "python", "-c",
        "import http.server as h; h.SimpleHTTPRequestHandler.protocol_version = 'HTTP/1.1'; "
        "h.ThreadingHTTPServer(('0.0.0.0', 8000), h.SimpleHTTPRequestHandler).serve_forever()",
    ]  # fmt: skip
    direct, relayed = free_port(), free_port()
    try:
        engine.create_network(f"bb-{grade_id}", grade_id)
        engine.create_internal_network(f"bb-{grade_id}-in", grade_id)
        engine.create_network(f"bb-{grade_id}-edge", grade_id)
        engine.run(
            ContainerSpec(f"bb-{grade_id}-direct", image, {}, serve, ports={8000: direct}),
            network=f"bb-{grade_id}",
            grade_id=grade_id,
        )
        engine.run(
            ContainerSpec(f"bb-{grade_id}-app", image, {}, serve, aliases=("app",)),
            network=f"bb-{grade_id}-in",
            grade_id=grade_id,
        )
        engine.run(
            ContainerSpec(
                f"bb-{grade_id}-relay", relay_image_tag(), {}, ["40000=app:8000"],
                ports={40000: relayed}, also_on=(f"bb-{grade_id}-in",), outside_names=False,
            ),
            network=f"bb-{grade_id}-edge",
            grade_id=grade_id,
        )  # fmt: skip
        ready = Readiness(http=HttpProbe(path="/"))
        for port in (direct, relayed):
            reason, _ = wait_ready(
                ready, port, exited=lambda: False, deadline=time.monotonic() + 60
            )
            assert reason is None, reason
        samples: dict[str, list[float]] = {
            f"{route}/{kind}": [] for route in ("direct", "relay") for kind in ("new", "kept")
        }
        clients = {
            port: httpx.Client(base_url=f"http://127.0.0.1:{port}") for port in (direct, relayed)
        }
        try:
            for _ in range(requests // 10):
                for route, port in (("direct", direct), ("relay", relayed)):
                    for _ in range(10):
                        began = time.perf_counter()
                        httpx.get(f"http://127.0.0.1:{port}/", headers={"Connection": "close"})
                        samples[f"{route}/new"].append(time.perf_counter() - began)
                        began = time.perf_counter()
                        clients[port].get("/")
                        samples[f"{route}/kept"].append(time.perf_counter() - began)
        finally:
            for client in clients.values():
                client.close()
        return {name: statistics.median(values) for name, values in samples.items()}
    finally:
        engine.remove_grade(grade_id)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _load() -> float:
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--exercise", default="rest-crud")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=200, help="per route, relay benchmark")
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
    workspace = scratch / "ws"
    totals: dict[str, list[float]] = {level: [] for level in LEVELS}
    stages: dict[str, dict[str, list[float]]] = {
        level: {stage: [] for stage in STAGES} for level in LEVELS
    }
    loads: list[float] = []
    failures: list[str] = []
    try:
        new_project(pack, exercise, workspace)
        lay_solution(exercise, workspace)
        _grade(workspace, "standard", env, failures)  # the cold build, not counted
        for round_ in range(args.rounds):
            # Alternate which level goes first, so neither always follows the other.
            order = LEVELS if round_ % 2 == 0 else LEVELS[::-1]
            for level in order:
                loads.append(_load())
                graded = _grade(workspace, level, env, failures)
                if graded is None:
                    continue
                elapsed, document = graded
                assert document["isolation"] == level, document["isolation"]
                totals[level].append(elapsed)
                timings: dict[str, float] = document["timings"]  # type: ignore[assignment]
                for stage in STAGES:
                    stages[level][stage].append(float(timings.get(stage, 0.0)))
                print(f"round {round_ + 1} {level:<9} {elapsed:7.2f} s", flush=True)
    finally:
        engine.remove_image(app_image_tag(exercise, workspace))
        shutil.rmtree(scratch, ignore_errors=True)
    per_request = relay_overhead(engine, pack.image_tag("python"), args.requests)

    median = {level: _median(totals[level]) for level in LEVELS}
    stage_median = {
        level: {stage: round(_median(v), 3) for stage, v in stages[level].items()}
        for level in LEVELS
    }
    overhead = median["strict"] / median["standard"] - 1
    summary = {
        "exercise": args.exercise,
        "rounds": args.rounds,
        "median_seconds": {level: round(v, 3) for level, v in median.items()},
        "strict_overhead": round(overhead, 4),
        "stage_median_seconds": stage_median,
        "samples": {level: [round(x, 3) for x in v] for level, v in totals.items()},
        "load_average_1m": [round(x, 2) for x in loads],
        "failed_grades_retried": failures,
        "per_request_median_ms": {k: round(v * 1000, 3) for k, v in per_request.items()},
        "cpus": os.cpu_count(),
    }
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / f"isolation-{args.exercise}.json").write_text(json.dumps(summary, indent=2))
    print(f"\n{'stage (median s)':<20}{'standard':>10}{'strict':>10}")
    for stage in (*STAGES, "whole grade"):
        if stage == "whole grade":
            row = (median["standard"], median["strict"])
        else:
            row = (stage_median["standard"][stage], stage_median["strict"][stage])
        print(f"{stage:<20}{row[0]:>10.2f}{row[1]:>10.2f}")
    print(f"\n{'one GET (median ms)':<20}{'direct':>10}{'relay':>10}")
    for kind, label in (("new", "new connection"), ("kept", "kept-alive")):
        row = (per_request[f"direct/{kind}"] * 1000, per_request[f"relay/{kind}"] * 1000)
        print(f"{label:<20}{row[0]:>10.2f}{row[1]:>10.2f}")
    print(f"strict overhead: {overhead:+.1%} (load average during the run: "
          f"{min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} CPUs)")  # fmt: skip


if __name__ == "__main__":
    main()
