#!/usr/bin/env python3
"""Peak memory of `sluice run` streaming a Snowflake result, at growing row counts.

    python3 bench/snowflake_bench.py [--rows 100000,1000000] [--sluice target/release/sluice]

Starts fakesnow behind the project's adapter (tests/fakesnow/adapter.py, from the venv
scripts/setup.sh installs) on a free loopback port, creates a table of each size, and runs
`sluice run` against it into a local folder: the real connector, chunked JSON results (as
Snowflake sends them), rendering, CSV encoding and gzip. The figure that matters is peak RSS,
which must stay flat as the row count grows. Wall time is mostly the Python stand-in turning
DuckDB's rows into JSON, so rows/s here is not Sluice's decode rate (see the criterion
benchmark `cargo bench -p sluice-snowflake --bench decode` for that).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from export_bench import peak_rss_kib, run_measured, self_maxrss_kib  # noqa: E402

PYTHON = ROOT / ".tools/venv/bin/python"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sql(port: int, statements: list[str], database: str | None = None) -> None:
    """Runs statements through the adapter's HTTP API (login, then one query each)."""

    def post(path, body, token=None):
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        if token:
            req.add_header("Authorization", f'Snowflake Token="{token}"')
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.load(r)

    login = "/session/v1/login-request" + (f"?databaseName={database}&schemaName=PUBLIC" if database else "")
    token = post(login, {"data": {"LOGIN_NAME": "BENCH", "PASSWORD": "x"}})["data"]["token"]
    for s in statements:
        answer = post("/queries/v1/query-request", {"sqlText": s}, token)
        if not answer.get("success"):
            raise RuntimeError(f"{s}: {answer.get('message')}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", default="100000,1000000", help="comma-separated row counts")
    ap.add_argument("--sluice", default=str(ROOT / "target/release/sluice"))
    ap.add_argument("--chunk-rows", type=int, default=50_000, help="rows per result chunk served")
    args = ap.parse_args()
    sluice = Path(args.sluice)
    if not sluice.exists():
        print(f"{sluice} is missing: build it with `cargo build --release -p sluice-cli`", file=sys.stderr)
        return 2
    if not PYTHON.exists():
        print("the venv is missing: run scripts/setup.sh", file=sys.stderr)
        return 2

    port = free_port()
    adapter = subprocess.Popen(
        [str(PYTHON), str(ROOT / "tests/fakesnow/adapter.py"), "--port", str(port), "--chunk-rows", str(args.chunk_rows)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = []
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/adapter/statements", timeout=2).read()
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("the adapter did not start")
                time.sleep(0.2)
        sql(port, ["CREATE DATABASE BENCH", "CREATE SCHEMA BENCH.PUBLIC"])
        floor = self_maxrss_kib()
        for n in [int(x) for x in args.rows.split(",")]:
            table = f"T{n}"
            sql(
                port,
                [
                    f"CREATE OR REPLACE TABLE BENCH.PUBLIC.{table} AS SELECT range AS ID, "
                    f"'user' || range || '@example.com' AS EMAIL, 'Name ' || (range % 1000) AS NAME, "
                    f"(range % 10000) / 100.0 AS SCORE, range % 3 = 0 AS ACTIVE, "
                    f"'2024-01-01'::TIMESTAMP + to_seconds(range) AS UPDATED_AT FROM range({n})"
                ],
                database="BENCH",
            )
            with tempfile.TemporaryDirectory() as work:
                cfg = Path(work) / "sluice.toml"
                cfg.write_text(
                    f"""version = 1
[sources.wh]
kind = "snowflake"
account = "bench"
user = "BENCH"
database = "BENCH"
schema = "PUBLIC"
auth = "password"
endpoint = "http://127.0.0.1:{port}"

[[export]]
name = "bench"
source = "wh"
destination = "out"
[[export.table]]
name = "{table}"
incremental = {{ strategy = "full" }}
"""
                )
                env = dict(os.environ, SNOWFLAKE_PASSWORD="x", SLUICE_LOG="warn")
                wall, code, wait4_kib, polled = run_measured(
                    [str(sluice), "--config", str(cfg), "--json", "run"],
                    Path(work) / "stdout",
                    Path(work) / "stderr",
                    env=env,
                )
                if code != 0:
                    print((Path(work) / "stderr").read_text(), file=sys.stderr)
                    raise RuntimeError(f"sluice exited {code}")
                summary = json.loads((Path(work) / "stdout").read_text())
                rows = summary[0]["rows"] if isinstance(summary, list) else summary["rows"]
                rss, how = peak_rss_kib(wait4_kib, polled, floor)
                results.append({"rows": rows, "wall_s": round(wall, 2), "peak_rss_mib": round(rss / 1024, 1), "rss_from": how})
                print(f"{rows:>10} rows  {wall:7.2f} s  peak RSS {rss / 1024:6.1f} MiB ({how})", flush=True)
    finally:
        adapter.kill()
        adapter.wait()
    out = ROOT / ".bench/work/snowflake-results.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
