"""Measure the capacity of bb.grader.open_loop on one core against a trivial local server.

    python benchmarks/load_bench.py [--rates 1000,2000,3000] [--duration 5]

The server (a bare asyncio protocol answering every request with a fixed 2-byte body, keep-
alive) runs in a child process pinned to one core, the generator to the other, so the numbers
are the generator's own. For each rate: requests sent and answered, achieved throughput, the
scheduling error (how late requests left, p50/p99/max), latency p50/p99, and errors. The goal
is at least 2,000 requests/s with a scheduling error p99 under 1 ms. Writes a JSON summary to
benchmarks/results/ and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SERVER = r"""
import asyncio, os, sys
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
class Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.buffer = transport, b""
    def data_received(self, data):
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")
        if count:
            self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4:]
            self.transport.write(RESPONSE * count)
async def main():
    server = await asyncio.get_running_loop().create_server(Answer, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(3600)
asyncio.run(main())
"""


def main() -> None:
    from bb.grader import open_loop

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="1000,2000,3000,4000")
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    cores = sorted(os.sched_getaffinity(0))
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        if len(cores) > 1:
            os.sched_setaffinity(server.pid, {cores[-1]})
            os.sched_setaffinity(0, {cores[0]})
        url = f"http://127.0.0.1:{port}"
        open_loop(url, [("GET", "/", None)], rate=500, count=200, timeout=5)  # warm-up
        rows = []
        for rate in (float(r) for r in args.rates.split(",")):
            began, cpu = time.perf_counter(), time.process_time()
            result = open_loop(
                url, [("GET", "/", None)], rate=rate, duration=args.duration, timeout=5,
                max_in_flight=256,
            )  # fmt: skip
            wall = time.perf_counter() - began
            cpu_per_request = (time.process_time() - cpu) / max(len(result.samples), 1)
            rows.append(
                {
                    "rate": rate,
                    "sent": len(result.samples),
                    "answered": sum(result.statuses.values()),
                    "throughput": round(result.throughput, 1),
                    "lag_p50_ms": round(result.send_lag_percentile(50) * 1000, 3),
                    "lag_p99_ms": round(result.send_lag_percentile(99) * 1000, 3),
                    "lag_max_ms": round(result.send_lag_percentile(100) * 1000, 3),
                    "latency_p50_ms": round(result.p50 * 1000, 3),
                    "latency_p99_ms": round(result.p99 * 1000, 3),
                    "errors": dict(result.errors),
                    "wall_s": round(wall, 2),
                    # The generator's CPU per request: 1 / this is what one idle core can send.
                    "cpu_us_per_request": round(cpu_per_request * 1e6, 1),
                    "load_average": os.getloadavg()[0],
                }
            )
    finally:
        server.kill()
        server.wait()
    header = ("rate/s", "sent", "answered", "thru/s", "lag p50", "lag p99", "lag max",
              "lat p50", "lat p99", "errors", "cpu/req", "loadavg")  # fmt: skip
    print(" ".join(f"{h:>9}" for h in header))
    for row in rows:
        print(
            f"{row['rate']:>9.0f} {row['sent']:>9} {row['answered']:>9} {row['throughput']:>9.0f}"
            f" {row['lag_p50_ms']:>8.3f}m {row['lag_p99_ms']:>8.3f}m {row['lag_max_ms']:>8.2f}m"
            f" {row['latency_p50_ms']:>8.2f}m {row['latency_p99_ms']:>8.2f}m"
            f" {sum(row['errors'].values()):>9} {row['cpu_us_per_request']:>7.0f}µs"
            f" {row['load_average']:>9.1f}"
        )
    print("(other processes compete for the cores when the load average is above 2)")
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    out = results / f"load-{time.strftime('%Y%m%dT%H%M%S')}.json"
    out.write_text(json.dumps({"duration": args.duration, "cores": len(cores), "rows": rows},
                              indent=2))  # fmt: skip
    print(f"(ms; written to {out.relative_to(ROOT)})")


if __name__ == "__main__":
    main()
