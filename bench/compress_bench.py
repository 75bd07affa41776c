#!/usr/bin/env python3
"""Compression's cost, side by side in one run: the same full CSV export of the contacts table
uncompressed, gzip level 6 and zstd level 3 (wall time, CPU, peak RSS, part size), beside the
read floor (bench/floor.c) and the single-stream reference compressors (`gzip -6`, `zstd -3`)
on the uncompressed part, for the size each must stay within.

    cargo build --release -p sluice-cli
    python3 bench/compress_bench.py [--rows 2000000] [--runs 3] [--sluice target/release/sluice]
"""
import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(argv, cwd=None, stdout=subprocess.DEVNULL):
    """Wall seconds, CPU seconds and peak RSS (MiB) of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        if cwd:
            os.chdir(cwd)
        if stdout is not subprocess.DEVNULL:
            os.dup2(stdout.fileno(), 1)
        else:
            os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
        os.execvp(argv[0], argv)
    _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{argv[0]} failed ({status})")
    cpu = usage.ru_utime + usage.ru_stime
    del before
    return wall, cpu, usage.ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--workdir", default=".bench/compress")
    a = ap.parse_args()
    sluice = Path(a.sluice) if os.path.isabs(a.sluice) else ROOT / a.sluice
    if not sluice.exists():
        print(f"{sluice} is missing: cargo build --release -p sluice-cli", file=sys.stderr)
        return 2
    work = (ROOT / a.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    db = work / "contacts.db"
    subprocess.run(["bash", str(ROOT / "bench/gen_contacts.sh"), str(a.rows), str(db)], check=True,
                   stdout=subprocess.DEVNULL)
    floor = subprocess.run(["bash", str(ROOT / "bench/floor.sh")], check=True, capture_output=True, text=True).stdout.strip()
    # Read once so every run meets a warm page cache.
    subprocess.run(["cat", str(db)], stdout=subprocess.DEVNULL, check=True)

    results = {}
    floor_runs = [timed([floor, str(db), "contacts"]) for _ in range(a.runs)]
    results["floor (read only)"] = (floor_runs, None)
    parts = {}
    for name, fmt in [("none", 'compression = "none"'), ("gzip 6", 'compression = "gzip"'), ("zstd 3", 'compression = "zstd"')]:
        runs = []
        for _ in range(a.runs):
            case = work / name.replace(" ", "")
            shutil.rmtree(case, ignore_errors=True)
            case.mkdir()
            (case / "sluice.toml").write_text(
                f'version = 1\nhistory = "history.db"\n\n[sources.db]\nkind = "sqlite"\npath = "{db}"\n\n'
                f'[[export]]\nname = "contacts"\nsource = "db"\ndestination = "out"\n'
                f'format = {{ {fmt}, delimiter = "|", max_file_size = "4GiB" }}\n\n'
                '[[export.table]]\nname = "contacts"\nincremental = { strategy = "full" }\n')
            runs.append(timed([str(sluice), "--log-format", "json", "--config", str(case / "sluice.toml"), "run"]))
            found = [p for p in (case / "out").rglob("part-*")]
            parts[name] = found[0]
        results[f"sluice {name}"] = (runs, parts[name].stat().st_size)

    plain = parts["none"]
    for name, argv, out in [("gzip -6 (one stream)", ["gzip", "-6", "-c", str(plain)], work / "ref.csv.gz"),
                            ("zstd -3 (one thread)", ["zstd", "-3", "-q", "-c", str(plain)], work / "ref.csv.zst")]:
        runs = []
        for _ in range(a.runs):
            with open(out, "wb") as f:
                runs.append(timed(argv, stdout=f))
        results[name] = (runs, out.stat().st_size)

    base = statistics.median(r[0] for r in results["sluice none"][0])
    floor_wall = statistics.median(r[0] for r in results["floor (read only)"][0])
    print(f"\n{a.rows:,} rows, {a.runs} runs each, median; {os.cpu_count()} cores\n")
    print("| tool | wall | × uncompressed | × floor | CPU | peak RSS | size |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, (runs, size) in results.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        rss = max(r[2] for r in runs)
        size_text = f"{size / 2**20:.1f} MiB" if size else "-"
        print(f"| {name} | {wall:.3f} s | {wall / base:.2f} | {wall / floor_wall:.2f} | {cpu:.2f} s | {rss:.1f} MiB | {size_text} |")
    gz, gz_ref = results["sluice gzip 6"][1], results["gzip -6 (one stream)"][1]
    zs, zs_ref = results["sluice zstd 3"][1], results["zstd -3 (one thread)"][1]
    print(f"\ngzip part {100 * (gz / gz_ref - 1):+.2f}% against one stream; zstd part {100 * (zs / zs_ref - 1):+.2f}% against one thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
