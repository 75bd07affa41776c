#!/usr/bin/env python3
"""check_bench.py — the `check` strategy on a large table, side by side with a full export.

On the benchmark's `contacts` table (bench/gen_contacts.sh, 10M rows by default), in one run:

  full    `sluice run --full-refresh` of an export with strategy "full": every row to CSV
  first   the first `check` run (no state yet: every row is an insert, the state is written)
  delta   a `check` run after 1% of the rows changed in a checked column (a fresh 1% each
          round: `company` of the rows with id % 100 = round), with deletes on
  deletes last, a `check` run after 10% of the rows were deleted: that many delete rows, which
          must stream out in batches like any change

Rounds interleave a full export and a delta run, so drift on the machine hits both alike.
Each is timed and its peak RSS measured as in export_bench.py (wait4 and /proc VmHWM). The
state file's size per key and the delta's exported rows are checked and reported.

Usage: bench/check_bench.py [--rows N] [--runs K] [--sluice PATH] [--workdir DIR]
Writes <workdir>/check-results-<rows>.json. Exit status 0 ok, 1 a run failed or a figure is
off (rows exported, state size), 2 usage.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from export_bench import ROOT, BENCH, run_measured, peak_rss_kib, self_maxrss_kib, tail  # noqa: E402

CONFIG = """\
version = 1
history = "history.db"

[sources.bench]
kind = "sqlite"
path = "{db}"

[[export]]
name = "{name}"
source = "bench"
destination = "out"
format = {{ kind = "csv", delimiter = "|", header = true, compression = "none", max_file_size = "4GiB" }}

  [[export.table]]
  name = "contacts"
  incremental = {incremental}
"""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sluice", default="target/release/sluice")
    ap.add_argument("--workdir", default=".bench/work")
    args = ap.parse_args()
    if args.rows < 100 or args.runs < 1:
        print("check_bench: --rows must be at least 100 and --runs at least 1", file=sys.stderr)
        return 2
    sluice = (ROOT / args.sluice).resolve()
    if not sluice.exists():
        print(f"check_bench: no sluice binary at {sluice}: cargo build --release -p sluice-cli", file=sys.stderr)
        return 2
    work = (ROOT / args.workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    pristine = work / f"contacts-{args.rows}.db"
    subprocess.run(["bash", str(BENCH / "gen_contacts.sh"), str(args.rows), str(pristine)], check=True)
    # The check runs change their own copy; the full export reads the same copy.
    db = work / f"check-{args.rows}.db"
    shutil.copyfile(pristine, db)

    dirs = {}
    for name, incremental in [
        ("full", '{ strategy = "full" }'),
        ("check", '{ strategy = "check", key = ["id"], columns = ["email", "company", "score"], deletes = true }'),
    ]:
        d = work / f"check-bench-{name}"
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir()
        (d / "sluice.toml").write_text(CONFIG.format(db=db, name=name, incremental=incremental))
        dirs[name] = d

    floor = self_maxrss_kib()
    results = {"full": [], "first": [], "delta": [], "deletes": []}

    def run(kind: str, extra: list[str]) -> dict | None:
        d = dirs["full" if kind == "full" else "check"]
        if kind == "full":
            shutil.rmtree(d / "out", ignore_errors=True)
            (d / "history.db").unlink(missing_ok=True)
        argv = [str(sluice), "--config", str(d / "sluice.toml"), "run", "--json", *extra]
        out, err = d / f"{kind}.out", d / f"{kind}.err"
        wall, code, ru, polled = run_measured(argv, out, err, cwd=d)
        if code != 0:
            print(f"check_bench: {kind} run failed ({code}):\n{tail(err)}", file=sys.stderr)
            return None
        summary = json.loads(out.read_text())[0]
        rss, source = peak_rss_kib(ru, polled, floor)
        table = summary["tables"][0]
        r = {"wall_s": wall, "peak_rss_kib": rss, "rss_source": source, "rows": summary["rows"],
             "bytes": summary["bytes"], "changes": table.get("changes")}
        if kind != "full":
            state = d / "out" / table["manifest_key"].rsplit("/", 1)[0] / "_sluice_state.bin"
            r["state_bytes"] = state.stat().st_size
            r["state_bytes_per_key"] = r["state_bytes"] / args.rows
        results[kind].append(r)
        return r

    ok = True
    # Warm the page cache (in chunks: holding the file would raise this driver's RSS, which a
    # child's ru_maxrss never reports below), then the first check run writes the state every
    # delta compares with.
    with open(db, "rb", buffering=0) as f:
        while f.read(8 << 20):
            pass
    first = run("first", [])
    ok &= first is not None and first["changes"]["inserts"] == args.rows
    conn = sqlite3.connect(db)
    for k in range(args.runs):
        ok &= run("full", ["--full-refresh"]) is not None
        with conn:
            conn.execute("UPDATE contacts SET company = company || ' (moved)' WHERE id % 100 = ?", (k,))
        changed = conn.execute("SELECT changes()").fetchone()[0]
        delta = run("delta", [])
        ok &= delta is not None and delta["changes"]["updates"] == changed and delta["rows"] == changed
    with conn:
        conn.execute("DELETE FROM contacts WHERE id % 10 = 5")
    deleted = conn.execute("SELECT changes()").fetchone()[0]
    conn.close()
    gone = run("deletes", [])
    ok &= gone is not None and gone["changes"]["deletes"] == deleted and gone["rows"] == deleted

    def med(kind, key):
        vals = [r[key] for r in results[kind]]
        return statistics.median(vals) if vals else float("nan")

    print(f"\ncheck strategy, {args.rows:,} rows, {args.runs} rounds (median wall; peak RSS)")
    print(f"{'run':<28}{'wall s':>10}{'peak RSS MiB':>14}{'rows out':>12}{'state B/key':>13}")
    for kind, label in [("full", "full export (strategy full)"), ("first", "check, first run (no state)"),
                        ("delta", "check, 1% changed"), ("deletes", "check, 10% deleted")]:
        if not results[kind]:
            continue
        per_key = med(kind, "state_bytes_per_key") if kind != "full" else None
        print(f"{label:<28}{med(kind, 'wall_s'):>10.2f}{max(r['peak_rss_kib'] for r in results[kind]) / 1024:>14.1f}"
              f"{int(med(kind, 'rows')):>12,}{'' if per_key is None else f'{per_key:.2f}':>13}")
    if results["full"] and results["delta"]:
        print(f"delta / full wall time: {med('delta', 'wall_s') / med('full', 'wall_s'):.2f}")
    checks = results["delta"] + results["first"] + results["deletes"]
    peak = max((r["peak_rss_kib"] for r in checks), default=0) / 1024
    per_key = max((r["state_bytes_per_key"] for r in results["delta"] + results["first"]), default=0)
    targets = {"peak_rss_mib_below_256": peak < 256, "state_bytes_per_key_below_20": per_key < 20}
    print(f"targets: peak RSS {peak:.1f} MiB < 256: {targets['peak_rss_mib_below_256']}; "
          f"state {per_key:.2f} B/key < 20: {targets['state_bytes_per_key_below_20']}")
    out = work / f"check-results-{args.rows}.json"
    out.write_text(json.dumps({"rows": args.rows, "runs": args.runs, "results": results, "targets": targets}, indent=2))
    print(f"results: {out}")
    return 0 if ok and all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
