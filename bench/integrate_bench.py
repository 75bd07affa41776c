#!/usr/bin/env python3
"""integrate_bench.py — delivery rate of `sluice integrate` to a local API.

Side by side in one run, against the same local server (target/release/sluice-fake-api,
the tests' fake API in lean mode: it answers at once and keeps only counts and arrival
times):

  sluice   sluice integrate -i fast -m <manifest of --rows rows>: batches of --batch
           records, --in-flight requests at once, no rate limit; wall time and peak RSS
  ceiling  sluice-fake-api blast: the same number of requests with one of the bodies
           Sluice sent, --in-flight at once, from a client that does nothing else: what
           the server can take. sluice/ceiling near 1 means delivery is limited by the API.
  paced    sluice integrate -i paced: --limit requests/s (batches of 10) for about
           --seconds seconds; from the server's arrival times, the observed rate (ratio to
           the limit) and the most requests in any 1 s window (must not exceed the limit).
  shared   --processes sluice integrate processes at once, one integration (--limit/s),
           each delivering another table's manifest, sharing the history file: the
           observed rate of them all and the busiest 1 s window, against the one limit.

The manifests come from `sluice run --no-integrate` over databases made by
bench/gen_contacts.sh. Builds nothing: it needs target/release/sluice and
target/release/sluice-fake-api (cargo build --release -p sluice-cli -p sluice-testkit).

Usage: bench/integrate_bench.py [--rows N] [--batch B] [--in-flight C] [--limit R]
                                [--seconds S] [--processes P] [--workdir DIR]
Writes <workdir>/integrate-results.json. Exit 1 if a check fails (a delivery that
does not deliver every row, a window above the limit).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from export_bench import peak_rss_kib, run_measured, self_maxrss_kib  # noqa: E402

BUILD = "cargo build --release -p sluice-cli -p sluice-testkit"


class Api:
    """The fake API as a child process; stopped by closing its stdin."""

    def __init__(self, binary: Path):
        self.proc = subprocess.Popen([str(binary), "serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()

    def stats(self) -> dict:
        with urllib.request.urlopen(self.url + "/_stats", timeout=30) as r:
            return json.load(r)

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def max_in_window(times_ms: list[float], window_ms: float) -> int:
    times = sorted(times_ms)
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while times[lo] <= t - window_ms:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--in-flight", type=int, default=8)
    ap.add_argument("--limit", type=int, default=200, help="requests per second for the paced run")
    ap.add_argument("--seconds", type=int, default=10, help="length of the paced run")
    ap.add_argument("--processes", type=int, default=4, help="processes sharing one limit in the shared run")
    ap.add_argument("--workdir", default=str(ROOT / ".bench" / "work"))
    args = ap.parse_args()

    sluice = ROOT / "target/release/sluice"
    fake = ROOT / "target/release/sluice-fake-api"
    for b in (sluice, fake):
        if not b.exists():
            print(f"integrate_bench: {b} is missing; build it with: {BUILD}", file=sys.stderr)
            return 2
    work = Path(args.workdir) / "integrate"
    work.mkdir(parents=True, exist_ok=True)
    big, small = work / f"big-{args.rows}.db", work / "small.db"
    small_rows = args.limit * args.seconds * 10
    subprocess.run(["bash", str(ROOT / "bench/gen_contacts.sh"), str(args.rows), str(big)], check=True)
    subprocess.run(["bash", str(ROOT / "bench/gen_contacts.sh"), str(small_rows), str(small)], check=True)

    # The shared run's tables: copies of the small table, a manifest each.
    per_table = small_rows // args.processes
    copies = [f"c{i}" for i in range(args.processes)]
    sql = "".join(f"DROP TABLE IF EXISTS {c}; CREATE TABLE {c} AS SELECT * FROM contacts LIMIT {per_table};" for c in copies)
    subprocess.run(["sqlite3", str(small), sql], check=True)
    shared_tables = "".join(f'[[export.table]]\nname = "{c}"\nincremental = {{ strategy = "full" }}\n' for c in copies)

    api = Api(fake)
    config = work / "sluice.toml"
    config.write_text(f"""version = 1
history = "history.db"
[sources.big]
kind = "sqlite"
path = "{big}"
[sources.small]
kind = "sqlite"
path = "{small}"

[[export]]
name = "big"
source = "big"
destination = "out"
format = {{ compression = "gzip" }}
[[export.table]]
name = "contacts"
incremental = {{ strategy = "full" }}

[[export]]
name = "small"
source = "small"
destination = "out"
[[export.table]]
name = "contacts"
incremental = {{ strategy = "full" }}

[[export]]
name = "shared"
source = "small"
destination = "out"
{shared_tables}

[integrations.fast]
kind = "webhook"
export = "big"
url = "{api.url}/fast"
batch_size = {args.batch}
max_in_flight = {args.in_flight}

[integrations.paced]
kind = "webhook"
export = "small"
url = "{api.url}/paced"
batch_size = 10
max_in_flight = {args.in_flight}
rate_limit = "{args.limit}/s"

[integrations.shared]
kind = "webhook"
export = "shared"
url = "{api.url}/shared"
batch_size = 10
max_in_flight = {args.in_flight}
rate_limit = "{args.limit}/s"
""")
    for stale in ("history.db", "history.db-wal", "history.db-shm", "events.jsonl"):
        (work / stale).unlink(missing_ok=True)
    subprocess.run(["rm", "-rf", str(work / "out")], check=True)
    ran = subprocess.run([str(sluice), "-c", str(config), "run", "--no-integrate", "--json"], capture_output=True, check=True)
    ran_json = json.loads(ran.stdout)
    runs = ran_json["runs"] if isinstance(ran_json, dict) else ran_json
    manifests = {r["export"]: r["tables"][0]["manifest_key"] for r in runs}
    shared_manifests = [t["manifest_key"] for r in runs if r["export"] == "shared" for t in r["tables"]]

    results: dict = {"rows": args.rows, "batch": args.batch, "in_flight": args.in_flight}
    ok = True

    # 1. As fast as the API takes it.
    floor = self_maxrss_kib()
    wall, code, w4, polled = run_measured(
        [str(sluice), "-c", str(config), "integrate", "-i", "fast", "-m", manifests["big"], "--json"],
        work / "fast.out", work / "fast.err")
    rss, _ = peak_rss_kib(w4, polled, floor)
    st = api.stats()
    api.stop()
    requests, records = st["requests"], st["records"]
    if code != 0 or records != args.rows:
        print(f"integrate_bench: the fast delivery failed (exit {code}, {records} of {args.rows} records)", file=sys.stderr)
        ok = False
    results["sluice"] = {"seconds": wall, "requests": requests, "records": records, "records_per_s": records / wall,
                         "peak_rss_mib": rss / 1024}

    # 2. The server's ceiling for the same requests.
    body = work / "sample-body.json"
    body.write_text(json.dumps(st["sample"]))
    api = Api(fake)
    blast = subprocess.run([str(fake), "blast", api.url + "/fast", str(body), str(requests), str(args.in_flight)],
                           capture_output=True, text=True, check=True)
    api.stop()
    ceiling = json.loads(blast.stdout)
    per_request = args.rows / requests
    results["ceiling"] = {"seconds": ceiling["seconds"], "records_per_s": requests * per_request / ceiling["seconds"]}
    results["sluice_vs_ceiling"] = results["sluice"]["records_per_s"] / results["ceiling"]["records_per_s"]

    # 3. Paced.
    api = Api(fake)
    text = config.read_text().replace(f"{url_of(config)}", api.url)
    config.write_text(text)
    wall_p, code_p, _, _ = run_measured(
        [str(sluice), "-c", str(config), "integrate", "-i", "paced", "-m", manifests["small"], "--json"],
        work / "paced.out", work / "paced.err")
    st = api.stats()
    api.stop()
    times = st["times_ms"]
    span_s = (max(times) - min(times)) / 1000 if len(times) > 1 else 0
    observed = (len(times) - 1) / span_s if span_s else 0
    worst = max_in_window(times, 1000.0)
    results["paced"] = {"limit": args.limit, "requests": len(times), "observed_per_s": observed,
                        "ratio_to_limit": observed / args.limit, "max_in_any_1s": worst, "seconds": wall_p}
    if code_p != 0 or st["records"] != small_rows or worst > args.limit:
        print(f"integrate_bench: paced run: exit {code_p}, {st['records']} of {small_rows} records, "
              f"{worst} requests in one second (limit {args.limit})", file=sys.stderr)
        ok = False

    # 4. Several processes, one integration, one limit.
    api = Api(fake)
    config.write_text(config.read_text().replace(f"{url_of(config)}", api.url))
    start = time.perf_counter()
    procs = [subprocess.Popen([str(sluice), "-c", str(config), "integrate", "-i", "shared", "-m", m, "--json"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for m in shared_manifests]
    codes = [p.wait() for p in procs]
    wall_s = time.perf_counter() - start
    st = api.stats()
    api.stop()
    times = st["times_ms"]
    span_s = (max(times) - min(times)) / 1000 if len(times) > 1 else 0
    observed = (len(times) - 1) / span_s if span_s else 0
    worst = max_in_window(times, 1000.0)
    results["shared"] = {"processes": len(procs), "limit": args.limit, "requests": len(times),
                         "observed_per_s": observed, "ratio_to_limit": observed / args.limit,
                         "max_in_any_1s": worst, "seconds": wall_s}
    if any(codes) or st["records"] != per_table * len(procs) or worst > args.limit:
        print(f"integrate_bench: shared run: exits {codes}, {st['records']} of {per_table * len(procs)} records, "
              f"{worst} requests in one second (limit {args.limit})", file=sys.stderr)
        ok = False

    out = Path(args.workdir) / "integrate-results.json"
    out.write_text(json.dumps(results, indent=2))
    s, c, p = results["sluice"], results["ceiling"], results["paced"]
    print(f"{'run':<10}{'records':>12}{'seconds':>10}{'records/s':>12}{'peak RSS':>11}")
    print(f"{'sluice':<10}{s['records']:>12,}{s['seconds']:>10.2f}{s['records_per_s']:>12,.0f}{s['peak_rss_mib']:>8.1f} MiB")
    print(f"{'ceiling':<10}{args.rows:>12,}{c['seconds']:>10.2f}{c['records_per_s']:>12,.0f}")
    print(f"sluice / ceiling: {results['sluice_vs_ceiling']:.2f}")
    print(f"paced at {p['limit']}/s: {p['requests']} requests, observed {p['observed_per_s']:.1f}/s "
          f"({p['ratio_to_limit']:.3f} of the limit), at most {p['max_in_any_1s']} in any 1 s window")
    sh = results["shared"]
    print(f"shared by {sh['processes']} processes at {sh['limit']}/s: {sh['requests']} requests, observed "
          f"{sh['observed_per_s']:.1f}/s ({sh['ratio_to_limit']:.3f} of the limit), at most {sh['max_in_any_1s']} in any 1 s window")
    print(f"results: {out}")
    return 0 if ok else 1


def url_of(config: Path) -> str:
    for line in config.read_text().splitlines():
        if line.startswith("url = ") and ("/paced" in line or "/shared" in line):
            return line.split('"')[1].rsplit("/", 1)[0]
    raise SystemExit("no paced url in the config")


if __name__ == "__main__":
    sys.exit(main())
