#!/usr/bin/env python3
"""Incremental runs, side by side in one run: after a first run of the contacts table, 0.1% of
its rows change before each run, and each `timestamp` run is timed (wall, CPU, peak RSS) with
how many times it read the table (the bytes it read with pread64, under strace, over the
file's size). Three cases: `upper_bound = "now"` (the default) and `"max"` without an index on
`updated_at`, and `"now"` with one. Beside each, the sqlite3 CLI reading the same window with
the query a person would write (`SELECT * ... WHERE updated_at > ? AND updated_at <= ?`), one
pass at best; and, with --baseline, another sluice binary (an older build) on the same steps.

The second run of a table is reported apart: it counts late rows into the first window, which
has no lower end (every older row is in it). The runs after it are the steady state.

    cargo build --release -p sluice-cli
    python3 bench/incremental_bench.py [--rows 10000000] [--runs 3] [--sluice target/release/sluice]
                                       [--baseline PATH] [--workdir .bench/incremental]
Needs sqlite3 and strace (Debian packages).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CASES = [
    ("now, no index", "", False),
    ("max, no index", ', upper_bound = "max"', False),
    ("now, index on updated_at", "", True),
]


def timed(argv, stdout=None):
    """Wall seconds, CPU seconds, peak RSS (MiB) and stdout of one child process."""
    out = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-out-{os.getpid()}"
    t0 = time.perf_counter()
    with open(out, "wb") as f:
        pid = os.fork()
        if pid == 0:
            os.dup2(f.fileno(), 1)
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
            os.execvp(argv[0], argv)
        _, status, usage = os.wait4(pid, 0)
    wall = time.perf_counter() - t0
    text = out.read_bytes()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({status}): {text[-2000:]!r}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text


def sql(db, statement):
    subprocess.run(["sqlite3", str(db), statement], check=True, stdout=subprocess.DEVNULL)


def touch(db, k, spread):
    """0.1% of the rows change, stamped as a writer would: 6 s ago, past the last run's bound
    (the default lag is 5 s, and the last run started over a second ago); for `max`, in ten
    distinct seconds, so that it holds back only the newest tenth, as it holds back ties."""
    time.sleep(1.2)
    stamp = "datetime('now', '-6 seconds', '-' || (id / 1000 % 10) || ' seconds')" if spread else \
        "datetime('now', '-6 seconds')"
    sql(db, f"UPDATE contacts SET updated_at = {stamp} WHERE id % 1000 = {k % 1000}")
    subprocess.run(["cat", str(db)], stdout=subprocess.DEVNULL, check=True)


def passes(argv, db):
    """How many times a command read the database file: its pread64 bytes over the file's size."""
    trace = db.parent / "trace.txt"
    subprocess.run(["strace", "-f", "-qq", "-e", "trace=pread64", "-e", "signal=none", "-o", str(trace)] + argv,
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    total = sum(int(m.group(1)) for m in re.finditer(r"pread64\(.*\) = (\d+)", trace.read_text()))
    return total / db.stat().st_size


def case(name, extra, index, base_db, work, binaries, rounds):
    """One case: per binary, a fresh copy of the table, a first run, then `rounds` + 1 rounds of
    change-and-run (the first of them is the table's second run), and one more under strace."""
    results = {}
    for label, binary in binaries:
        d = work / re.sub(r"[^a-z]+", "-", f"{label} {name}")
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)
        db = d / "source.db"
        shutil.copyfile(base_db, db)
        if index:
            sql(db, "CREATE INDEX contacts_updated_at ON contacts (updated_at)")
        (d / "sluice.toml").write_text(
            f'version = 1\nhistory = "history.db"\n\n[sources.db]\nkind = "sqlite"\npath = "{db}"\n\n'
            '[[export]]\nname = "contacts"\nsource = "db"\ndestination = "out"\n'
            'format = { compression = "none", delimiter = "|" }\n\n'
            '[[export.table]]\nname = "contacts"\n'
            f'incremental = {{ strategy = "timestamp", column = "updated_at"{extra} }}\n')
        argv = [str(binary), "--log-format", "json", "--config", str(d / "sluice.toml"), "run", "--json"]
        subprocess.run(["cat", str(db)], stdout=subprocess.DEVNULL, check=True)
        first = timed(argv)
        runs, windows = [], []
        for k in range(1, rounds + 2):
            touch(db, k, "max" in name)
            wall, cpu, rss, out = timed(argv)
            summary = json.loads(out)
            table = summary[0]["tables"][0] if isinstance(summary, list) else summary["tables"][0]
            runs.append((wall, cpu, rss, table["rows"]))
            windows.append(table["window"])
        touch(db, rounds + 2, "max" in name)
        read = passes(argv, db)
        results[label] = {"first": first[:3], "second": runs[0], "steady": runs[1:], "passes": read, "db": db,
                          "window": windows[-1]}
    return results


def reference(db, window):
    """The sqlite3 CLI reading the same window into CSV: wall, CPU, RSS, rows, and passes."""
    # A window's ends are watermarks: {"type": "text", "value": "..."}.
    low, high = (window.get(k) and window[k]["value"] for k in ("low", "high"))
    where = f"updated_at <= '{high}'" if low is None else f"updated_at > '{low}' AND updated_at <= '{high}'"
    argv = ["sqlite3", "-csv", "-separator", "|", str(db), f"SELECT * FROM contacts WHERE {where}"]
    runs = [timed(argv) for _ in range(3)]
    wall = statistics.median(r[0] for r in runs)
    cpu = statistics.median(r[1] for r in runs)
    rows = runs[0][3].count(b"\n")
    return wall, cpu, max(r[2] for r in runs), rows, passes(argv, db)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3, help="steady-state runs per case (after the second run)")
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--baseline", help="another sluice binary to run on the same steps")
    ap.add_argument("--workdir", default=".bench/incremental")
    a = ap.parse_args()
    for tool in ("sqlite3", "strace"):
        if not shutil.which(tool):
            print(f"{tool} is missing (a Debian package of that name)", file=sys.stderr)
            return 2
    binaries = [("sluice", Path(a.sluice).resolve())]
    if a.baseline:
        binaries.append(("baseline", Path(a.baseline).resolve()))
    for _, b in binaries:
        if not b.exists():
            print(f"{b} is missing: cargo build --release -p sluice-cli", file=sys.stderr)
            return 2
    work = (ROOT / a.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    base_db = work / f"contacts-{a.rows}.db"
    subprocess.run(["bash", str(ROOT / "bench/gen_contacts.sh"), str(a.rows), str(base_db)], check=True,
                   stdout=subprocess.DEVNULL)

    print(f"\n{a.rows:,} rows ({base_db.stat().st_size / 2**20:.0f} MiB file), 0.1% changed before each run; "
          f"{os.cpu_count()} cores; steady state: median of {a.runs} runs\n")
    print("| case | tool | first run | second run | steady wall | steady CPU | peak RSS | rows | passes |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, extra, index in CASES:
        results = case(name, extra, index, base_db, work, binaries, a.runs)
        for label, r in results.items():
            steady = r["steady"]
            wall = statistics.median(s[0] for s in steady)
            cpu = statistics.median(s[1] for s in steady)
            rss = max([r["first"][2], r["second"][2]] + [s[2] for s in steady])
            print(f"| {name} | {label} | {r['first'][0]:.2f} s | {r['second'][0]:.3f} s | {wall:.3f} s | {cpu:.3f} s "
                  f"| {rss:.1f} MiB | {steady[-1][3]:,} | {r['passes']:.2f} |")
        ref = reference(results["sluice"]["db"], results["sluice"]["window"])
        print(f"| {name} | sqlite3 CLI, same window | - | - | {ref[0]:.3f} s | {ref[1]:.3f} s | {ref[2]:.1f} MiB "
              f"| {ref[3]:,} | {ref[4]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
