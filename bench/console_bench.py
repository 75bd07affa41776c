#!/usr/bin/env python3
"""The console's exports list at scale: 500 exports of 10 tables each, every one run once,
then `GET /` timed on the server (its Server-Timing header) and at the client, side by side
with `sluice status --json` over the same exports (the CLI's own listing of the same stores).

    cargo build --release -p sluice-cli
    python3 bench/console_bench.py [--exports 500] [--tables 10] [--requests 30] [--sluice target/release/sluice]

Everything is written under --workdir (default .bench/console); nothing is timed as a test.
"""
import argparse
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(work: Path, exports: int, tables: int) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    db = work / "source.db"
    if not db.exists():
        c = sqlite3.connect(db)
        for t in range(tables):
            c.execute(f"CREATE TABLE t{t} (id INTEGER PRIMARY KEY, name TEXT, updated_at TEXT)")
            c.executemany(f"INSERT INTO t{t} VALUES (?, ?, '2025-06-01 00:00:00')", [(i, f"n{i}") for i in range(10)])
        c.commit()
        c.close()
    lines = ['version = 1', 'history = "history.db"', '', '[sources.db]', 'kind = "sqlite"', 'path = "source.db"', '']
    for e in range(exports):
        lines += ['[[export]]', f'name = "e{e:04d}"', 'source = "db"', f'destination = "out/e{e:04d}"',
                  'schedule = "rate(1 hour)"', '']
        for t in range(tables):
            lines += ['[[export.table]]', f'name = "t{t}"', 'incremental = { strategy = "timestamp", column = "updated_at" }', '']
    config = work / "sluice.toml"
    config.write_text("\n".join(lines))
    return config


def rss_peak_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--exports", type=int, default=500)
    ap.add_argument("--tables", type=int, default=10)
    ap.add_argument("--requests", type=int, default=30)
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--workdir", default=".bench/console")
    a = ap.parse_args()
    sluice = str((ROOT / a.sluice).resolve()) if not os.path.isabs(a.sluice) else a.sluice
    if not Path(sluice).exists():
        print(f"{sluice} is missing: cargo build --release -p sluice-cli", file=sys.stderr)
        return 2
    work = (ROOT / a.workdir).resolve()
    config = build(work, a.exports, a.tables)
    env = {**os.environ, "SLUICE_CONFIG": str(config)}
    env.pop("SLUICE_HISTORY", None)

    if not (work / "history.db").exists():
        t0 = time.perf_counter()
        subprocess.run([sluice, "--log-format", "json", "run"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"setup: ran {a.exports} exports x {a.tables} tables once in {time.perf_counter() - t0:.1f} s")

    status_s = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([sluice, "--log-format", "json", "status", "--json"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        status_s.append(time.perf_counter() - t0)

    console = subprocess.Popen([sluice, "--log-format", "json", "console", "--listen", "127.0.0.1:0"], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = console.stdout.readline().split()[1]
        server_ms, client_ms, size = [], [], 0
        for i in range(a.requests + 2):
            t0 = time.perf_counter()
            with urllib.request.urlopen(url) as r:
                body = r.read()
                timing = r.headers.get("server-timing", "")
            wall = (time.perf_counter() - t0) * 1000
            if i < 2:
                continue  # warm-up: the first requests open the history and page it in
            server_ms.append(float(re.search(r"dur=([0-9.]+)", timing).group(1)))
            client_ms.append(wall)
            size = len(body)
        rows = body.decode().count("<tr>") - 1
        peak = rss_peak_kib(console.pid)
    finally:
        console.terminate()
        console.wait()

    def line(name, values, unit="ms"):
        v = sorted(values)
        p95 = v[min(len(v) - 1, int(len(v) * 0.95))]
        print(f"| {name} | {statistics.median(v):.1f} {unit} | {p95:.1f} {unit} | {v[-1]:.1f} {unit} |")

    print(f"\n{a.exports} exports x {a.tables} tables, {rows} rows listed, page {size / 1024:.0f} KiB, "
          f"{a.requests} requests; console peak RSS {peak / 1024:.1f} MiB\n")
    print("| measure | median | p95 | max |")
    print("| --- | --- | --- | --- |")
    line("console GET / (server time)", server_ms)
    line("console GET / (at the client)", client_ms)
    line("sluice status --json (whole process)", [s * 1000 for s in status_s])
    return 0


if __name__ == "__main__":
    sys.exit(main())
