#!/usr/bin/env python3
"""export_bench.py — whole-pipeline export benchmark for Sluice.

Generates a deterministic SQLite database (bench/gen_contacts.sh) and then
times, side by side in one run, exporting the full `contacts` table to a
pipe-delimited CSV file with a header on local disk with:

  sluice   SLUICE --config <workdir>/sluice/sluice.toml run --full-refresh --json
           (output dir and history file deleted before every run, so every
           run does the same work)
  sqlite3  sqlite3 -csv -header -separator '|' DB "SELECT * FROM contacts"
  python   bench/py_csv_export.py (sqlite3 module + csv.writer), same python3
  sling    the Sling CLI from .bench/venv (bench/setup.sh installs it):
           sling run --src-conn sqlite:///DB --src-stream main.contacts
                     --tgt-object file:///OUT --tgt-options '{"delimiter":"|",...}'
           with SLING_DISABLE_TELEMETRY=true and SLING_HOME_DIR=.bench/sling-home

Every tool is run as a direct child (no shell wrapper), stdout redirected to
a file, and reaped with os.wait4 for its ru_maxrss (peak RSS).
Caveat (Linux): a child's ru_maxrss is never below this driver's own peak
RSS at spawn time (~17 MiB for python3: exec records the high-water mark of
the address space it replaces, which for a vfork/fork child is the driver's).
So the driver also polls the child's own VmHWM from /proc every 10 ms, and
the reported peak RSS is ru_maxrss when it is clearly above the driver's
floor (then it is exact) and the polled VmHWM otherwise (see rss_source in
the JSON). Both raw figures are kept in the JSON.
Runs are interleaved (round k runs every tool once) so that drift on the
machine hits all tools alike. The DB file is read once before timing so every
tool starts from a warm page cache.

Prints a table (median/min wall, peak RSS, output size, rows/s, and the
ratio sluice/tool of median wall times) and writes the same as JSON to
<workdir>/results-<rows>.json. Each output is checked for rows+1 lines (the
data set has no embedded newlines); a mismatch prints a warning.

Usage: bench/export_bench.py [--rows N] [--runs K] [--sluice PATH]
                             [--only sluice,sqlite3,python,sling] [--workdir DIR]
Exit status: 0 ok; 1 a tool failed or an output check failed; 2 usage or a
tool named in --only cannot run.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
TOOLS = ["sluice", "sqlite3", "python", "sling"]
BUILD_CMD = "cargo build --release -p sluice-cli"

SLUICE_CONFIG = """\
version = 1
history = "history.db"

[sources.bench]
kind = "sqlite"
path = "{db}"

[[export]]
name = "bench"
source = "bench"
destination = "out-sluice"
format = {{ kind = "csv", delimiter = "|", header = true, compression = "none", max_file_size = "4GiB" }}

  [[export.table]]
  name = "contacts"
  incremental = {{ strategy = "timestamp", column = "updated_at" }}
"""

SLING_TGT_OPTIONS = '{"delimiter":"|","header":true,"compression":"none"}'


def toml_str(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


class Tool:
    """One exporter: how to prepare, run and find its output."""

    def __init__(self, name, argv, out_path, stdout_path, env=None, cwd=None,
                 clean=(), output_is_dir=False, version=""):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.out_path = Path(out_path)
        self.stdout_path = Path(stdout_path)
        self.env = env
        self.cwd = cwd
        self.clean = [Path(p) for p in clean]
        self.output_is_dir = output_is_dir
        self.version = version

    def prepare(self):
        for p in self.clean:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()

    def output_files(self):
        if not self.output_is_dir:
            return [self.out_path] if self.out_path.is_file() else []
        if not self.out_path.is_dir():
            return []
        return sorted(p for p in self.out_path.rglob("*") if p.is_file())


def _vmhwm_kib(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def run_measured(argv, stdout_path, stderr_path, env=None, cwd=None):
    """Run argv as a direct child and reap it with os.wait4.

    Returns (wall_s, exit_code, wait4_maxrss_kib, polled_vmhwm_kib). The second
    figure is the child's own VmHWM from /proc, polled every 10 ms while it
    runs: it does not include the driver's floor, but may miss growth in the
    last few ms before exit (a lower bound).
    """
    peak = [0]
    done = threading.Event()

    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                             env=env, cwd=cwd)

        def poll():
            while not done.wait(0.01):
                v = _vmhwm_kib(p.pid)
                if v is not None and v > peak[0]:
                    peak[0] = v

        th = threading.Thread(target=poll, daemon=True)
        th.start()
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        done.set()
        th.join()
    code = os.waitstatus_to_exitcode(status)
    p.returncode = code  # already reaped; keep Popen from waiting again
    return wall, code, ru.ru_maxrss, peak[0]  # Linux: KiB


def peak_rss_kib(wait4_kib: int, polled_kib: int, floor_kib: int) -> tuple[int, str]:
    """Best figure for the child's peak RSS and where it came from.

    wait4's ru_maxrss = max(driver RSS at spawn, child's true peak). Above the
    floor (with 1 MiB slack for Popen's own allocations) it is exact; at the
    floor the child used less, and the polled VmHWM is the best we have.
    """
    if wait4_kib > floor_kib + 1024:
        return max(wait4_kib, polled_kib), "wait4"
    if polled_kib == 0:  # exited before the first poll: only the upper bound is known
        return wait4_kib, "floor-upper-bound"
    return min(polled_kib, wait4_kib), "vmhwm-poll"


def count_lines(path: Path) -> int:
    n = 0
    buf = bytearray(1 << 20)
    with open(path, "rb", buffering=0) as f:
        while True:
            k = f.readinto(buf)
            if not k:
                break
            n += buf.count(b"\n", 0, k)
    return n


def self_maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def tail(path: Path, n=15) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join("    " + l for l in lines[-n:])


def sling_bin() -> Path | None:
    sp = sorted((ROOT / ".bench" / "venv" / "lib").glob(
        "python3*/site-packages/sling_linux_amd64/bin/sling-linux-amd64"))
    return sp[0] if sp and os.access(sp[0], os.X_OK) else None


def sling_env(workdir: Path) -> dict:
    env = dict(os.environ)
    home = ROOT / ".bench" / "sling-home"
    home.mkdir(parents=True, exist_ok=True)
    env.update({
        # Without this Sling resolves/contacts its telemetry endpoint on every
        # run (seen as DNS traffic under strace); with it there is no network use.
        "SLING_DISABLE_TELEMETRY": "true",
        "SEND_ANON_USAGE": "false",
        "SLING_HOME_DIR": str(home),      # keep its state out of ~/.sling
    })
    return env


def build_tools(args, db: Path, workdir: Path, selected: list[str]):
    """Return (tools, skipped) where skipped maps name -> reason."""
    tools, skipped = [], {}
    logs = workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    if "sluice" in selected:
        sluice = Path(args.sluice)
        if not sluice.is_absolute():
            sluice = ROOT / sluice
        if not (sluice.is_file() and os.access(sluice, os.X_OK)):
            skipped["sluice"] = (f"sluice binary not found at {sluice}; build it first with "
                                 f"`{BUILD_CMD}` (or pass --sluice PATH)")
        else:
            cfg_dir = workdir / "sluice"
            cfg_dir.mkdir(parents=True, exist_ok=True)
            cfg = cfg_dir / "sluice.toml"
            cfg.write_text(SLUICE_CONFIG.format(db=toml_str(str(db))))
            hist = cfg_dir / "history.db"
            tools.append(Tool(
                "sluice",
                [sluice, "--config", cfg, "run", "--full-refresh", "--json"],
                out_path=cfg_dir / "out-sluice", output_is_dir=True,
                stdout_path=logs / "sluice.stdout.json",
                cwd=cfg_dir,
                clean=[cfg_dir / "out-sluice", hist, Path(f"{hist}-wal"),
                       Path(f"{hist}-shm"), Path(f"{hist}-journal")],
            ))

    if "sqlite3" in selected:
        exe = shutil.which("sqlite3")
        if not exe:
            skipped["sqlite3"] = "sqlite3 CLI not on PATH (apt-get install -y sqlite3)"
        else:
            out = workdir / "out-sqlite3.csv"
            ver = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.split()
            tools.append(Tool(
                "sqlite3",
                [exe, "-csv", "-header", "-separator", "|", db, "SELECT * FROM contacts"],
                out_path=out, stdout_path=out, clean=[out],
                version=ver[0] if ver else "",
            ))

    if "python" in selected:
        out = workdir / "out-python.csv"
        tools.append(Tool(
            "python",
            [sys.executable, BENCH / "py_csv_export.py", db, out],
            out_path=out, stdout_path=logs / "python.stdout", clean=[out],
            version=platform.python_version(),
        ))

    if "sling" in selected:
        reason = None
        exe = sling_bin()
        if platform.machine() not in ("x86_64", "AMD64"):
            reason = f"the sling-linux-amd64 binary does not run on {platform.machine()}"
        elif exe is None:
            reason = ("Sling binary not found under .bench/venv "
                      "(run bench/setup.sh, which pip-installs sling-linux-amd64)")
        if reason is None:
            env = sling_env(workdir)
            out = workdir / "out-sling.csv"
            argv = [exe, "run",
                    "--src-conn", f"sqlite://{db}",
                    "--src-stream", "main.contacts",
                    "--tgt-object", f"file://{out}",
                    "--tgt-options", SLING_TGT_OPTIONS]
            # Probe once (untimed) so a Sling that cannot work here is skipped
            # with its own error message instead of being timed.
            probe = subprocess.run([exe, "--version"], capture_output=True, text=True, env=env)
            if probe.returncode != 0:
                reason = (f"`sling --version` exited {probe.returncode}: "
                          f"{(probe.stderr or probe.stdout).strip()[-500:]}")
            else:
                ver = probe.stdout.strip().replace("Version:", "").strip()
                tools.append(Tool("sling", argv, out_path=out,
                                  stdout_path=logs / "sling.stdout", env=env,
                                  clean=[out], version=ver))
        if reason:
            skipped["sling"] = reason
    return tools, skipped


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--sluice", default="target/release/sluice",
                    help="sluice binary (relative paths are taken from the repo root)")
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ",".join(TOOLS))
    ap.add_argument("--workdir", default=".bench/work",
                    help="scratch folder (relative paths are taken from the repo root)")
    args = ap.parse_args()

    if args.rows < 0 or args.runs < 1:
        ap.error("--rows must be >= 0 and --runs >= 1")
    selected = [t.strip() for t in args.only.split(",") if t.strip()] or list(TOOLS)
    unknown = [t for t in selected if t not in TOOLS]
    if unknown:
        ap.error(f"unknown tool(s) in --only: {','.join(unknown)} (known: {','.join(TOOLS)})")
    selected = [t for t in TOOLS if t in selected]

    workdir = Path(args.workdir)
    if not workdir.is_absolute():
        workdir = ROOT / workdir
    workdir.mkdir(parents=True, exist_ok=True)

    db = workdir / f"contacts-{args.rows}.db"
    t0 = time.perf_counter()
    subprocess.run(["bash", str(BENCH / "gen_contacts.sh"), str(args.rows), str(db)], check=True)
    gen_s = time.perf_counter() - t0

    tools, skipped = build_tools(args, db, workdir, selected)
    for name, reason in skipped.items():
        print(f"SKIP {name}: {reason}", file=sys.stderr)
    if args.only and skipped:
        print("error: a tool named in --only cannot run (see above)", file=sys.stderr)
        return 2
    if not tools:
        print("error: no tool to run", file=sys.stderr)
        return 2

    # Warm the page cache for the DB so no tool pays for the first cold read
    # (small reused buffer: this process's RSS is the floor of every ru_maxrss).
    buf = bytearray(1 << 20)
    with open(db, "rb", buffering=0) as f:
        while f.readinto(buf):
            pass
    del buf

    logs = workdir / "logs"
    results = {t.name: {"runs": [], "failed": None} for t in tools}
    print(f"exporting {args.rows:,} rows ({db.stat().st_size / 2**20:.1f} MiB db), "
          f"{args.runs} run(s) each: {', '.join(t.name for t in tools)}", file=sys.stderr)
    for k in range(1, args.runs + 1):
        for t in tools:
            r = results[t.name]
            if r["failed"]:
                continue
            t.prepare()
            err = logs / f"{t.name}.run{k}.stderr"
            floor_kib = self_maxrss_kib()
            wall, code, w4, polled = run_measured(t.argv, t.stdout_path, err,
                                                  env=t.env, cwd=t.cwd)
            rss, rss_src = peak_rss_kib(w4, polled, floor_kib)
            files = t.output_files()
            out_bytes = sum(p.stat().st_size for p in files)
            if code != 0:
                r["failed"] = f"run {k} exited {code}"
                print(f"FAIL {t.name} run {k}: exit {code}; command: {' '.join(t.argv)}\n"
                      f"  stderr tail ({err}):\n{tail(err)}", file=sys.stderr)
                continue
            r["runs"].append({"wall_s": wall, "maxrss_kib": rss, "rss_source": rss_src,
                              "wait4_maxrss_kib": w4, "polled_vmhwm_kib": polled,
                              "rss_floor_kib": floor_kib,
                              "output_bytes": out_bytes, "output_files": len(files)})
            print(f"  run {k} {t.name:8s} {wall:8.3f} s  {rss / 1024:8.1f} MiB RSS ({rss_src}; "
                  f"wait4 {w4 / 1024:.1f}, polled {polled / 1024:.1f})  "
                  f"{out_bytes / 2**20:8.1f} MiB out", file=sys.stderr)

    # Sanity check the last output of each tool: rows + 1 header per file.
    warnings = []
    for t in tools:
        r = results[t.name]
        if r["failed"]:
            continue
        files = t.output_files()
        if t.output_is_dir:
            csvs = [p for p in files if p.name.endswith(".csv")] or files
        else:
            csvs = files
        lines = sum(count_lines(p) for p in csvs)
        expected = args.rows + max(len(csvs), 1)
        r["lines"] = lines
        r["expected_lines"] = expected
        if not csvs:
            warnings.append(f"{t.name}: no output file found at {t.out_path}")
        elif lines != expected:
            warnings.append(f"{t.name}: {lines} lines in {len(csvs)} file(s), expected "
                            f"{expected} (rows + one header per file) — {t.out_path}")
    for w in warnings:
        print(f"WARNING {w}", file=sys.stderr)

    # Summaries.
    summary = []
    for t in tools:
        r = results[t.name]
        runs = r["runs"]
        if r["failed"] or not runs:
            summary.append({"tool": t.name, "failed": r["failed"] or "no run"})
            continue
        walls = [x["wall_s"] for x in runs]
        med = statistics.median(walls)
        summary.append({
            "tool": t.name,
            "version": t.version,
            "median_wall_s": med,
            "min_wall_s": min(walls),
            "peak_rss_mib": max(x["maxrss_kib"] for x in runs) / 1024,
            "rss_source": ",".join(sorted({x["rss_source"] for x in runs})),
            "output_mib": runs[-1]["output_bytes"] / 2**20,
            "output_bytes": runs[-1]["output_bytes"],
            "rows_per_s": args.rows / med if med > 0 else None,
            "lines": r.get("lines"),
            "lines_ok": r.get("lines") == r.get("expected_lines"),
            "runs": runs,
            "command": t.argv,
        })
    sluice_med = next((s["median_wall_s"] for s in summary
                       if s["tool"] == "sluice" and "median_wall_s" in s), None)
    for s in summary:
        if "median_wall_s" in s:
            s["ratio_sluice_over_tool"] = (sluice_med / s["median_wall_s"]
                                           if sluice_med is not None else None)

    hdr = (f"{'tool':8s} {'median s':>9s} {'min s':>8s} {'peak RSS MiB':>12s} "
           f"{'output MiB':>10s} {'rows/s':>11s} {'sluice/tool':>11s}")
    print()
    floor_mib = self_maxrss_kib() / 1024
    print(f"rows={args.rows:,} runs={args.runs} host={platform.node()} cpus={os.cpu_count()} "
          f"rss_floor={floor_mib:.1f} MiB (driver RSS; ru_maxrss cannot read lower)")
    print(hdr)
    print("-" * len(hdr))
    for s in summary:
        if "median_wall_s" not in s:
            print(f"{s['tool']:8s} FAILED: {s['failed']}")
            continue
        print(f"{s['tool']:8s} {s['median_wall_s']:9.3f} {s['min_wall_s']:8.3f} "
              f"{s['peak_rss_mib']:12.1f} {s['output_mib']:10.1f} "
              f"{fmt(s['rows_per_s'], ',.0f'):>11s} {fmt(s['ratio_sluice_over_tool'], '.2f'):>11s}")
    for name, reason in skipped.items():
        print(f"{name:8s} SKIPPED: {reason}")

    out_json = workdir / f"results-{args.rows}.json"
    doc = {
        "rows": args.rows,
        "runs": args.runs,
        "timestamp": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "host": {"node": platform.node(), "machine": platform.machine(),
                 "cpus": os.cpu_count(), "kernel": platform.release()},
        "db": str(db),
        "db_bytes": db.stat().st_size,
        "generate_s": gen_s,
        "rss_floor_mib": floor_mib,
        "results": summary,
        "skipped": skipped,
        "warnings": warnings,
    }
    out_json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nJSON: {out_json}")

    failed = any("failed" in s for s in summary)
    return 1 if failed or warnings else 0


if __name__ == "__main__":
    sys.exit(main())
