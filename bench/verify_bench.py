#!/usr/bin/env python3
"""verify_bench.py — `sluice verify` over a long chain of runs, against reference tools.

Generates (in Python, no sluice run) a destination holding --runs committed runs of one
table (export `bench`, table `contacts`), each with --parts parts of --part-bytes of
CSV-like random bytes and a valid version 2 manifest: each manifest links to the one
before by key and SHA-256 of its bytes, the timestamp windows chain (each run's low is the
previous run's high), the totals add up, run ids are one second apart. Then times, side by
side:

  folder
    sluice verify   SLUICE verify --at DIR --json; must report runs == --runs and no
                    findings (this is the check that the generated data is valid)
    find -type f    find DIR -type f (the listing alone)
    find | xargs sha256sum
                    find DIR -type f -print0 | xargs -0 sha256sum (list and hash every file)
  S3 (moto's server from .tools/venv, behind tests/moto/server.py)
    sluice verify   SLUICE verify --at s3://BUCKET/dest --json (needs a build with the aws
                    feature: cargo build --release -p sluice-cli --features aws); the same check
    aws s3 ls --recursive s3://BUCKET/dest/
    aws s3 cp --recursive s3://BUCKET/dest/ TMP (download every file)
    find | xargs sha256sum   over TMP
    (total)         the sum of the three: listing, downloading and hashing everything;
                    its hashes must equal the folder's (the copies agree)
  Without the aws CLI, boto3 list / boto3 get+sha256 (10 threads, as aws s3 cp) stand in.

Peak RSS comes from /usr/bin/time -v (for a pipeline: its largest single process); without
it, from os.wait4 and polling /proc (bench/export_bench.py's run_measured). The tree is
written and synced before any timing, so every tool reads it from a warm page cache.

S3 runs by default when moto's server can start and the binary has the aws feature (a
binary without it is asked first, and the S3 half is skipped with a note). --s3 requires
the S3 half: if moto cannot start, exit 2; if the binary lacks the aws feature, the
references still run, sluice's S3 row is skipped and the exit status is 2. --no-s3 skips it.

Usage: bench/verify_bench.py [--runs N] [--parts P] [--part-bytes B] [--sluice PATH]
                             [--s3 | --no-s3] [--workdir DIR] [--keep]
Builds nothing (cargo build --release -p sluice-cli [--features aws]). Writes
<workdir>/verify-results-<runs>x<parts>.json; the generated tree and the download are
removed at the end unless --keep. Exit 0 ok; 1 a check failed (sluice found violations in
the generated data, a tool failed, the copies disagree); 2 usage, or a requested part could
not run.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = "cargo build --release -p sluice-cli"
BUILD_AWS = "cargo build --release -p sluice-cli --features aws"
VENV_PY = ROOT / ".tools/venv/bin/python"
MOTO_SERVER = ROOT / "tests/moto/server.py"
TIME = Path("/usr/bin/time")

EXPORT, TABLE = "bench", "contacts"
BUCKET, PREFIX = "sluice-verify-bench", "dest"
GET_THREADS = 10  # aws s3 cp's default max_concurrent_requests
COLUMNS = [("id", "INTEGER"), ("email", "TEXT"), ("first_name", "TEXT"), ("last_name", "TEXT"),
           ("company", "TEXT"), ("score", "REAL"), ("created_at", "TEXT"), ("updated_at", "TEXT")]
# A CSV part's format as sluice describes it in a manifest (shared/core/src/format/description.rs).
FORMAT = {
    "kind": "csv", "delimiter": "|", "header": True, "quote": "\"", "quote_style": "needed",
    "null": "", "null_if": [], "empty_field_as_null": True, "record_terminator": "\n",
    "compression": "none", "max_file_size": 67108864,
}
AWS_HINT = "--features aws"  # in the error of a build without the AWS adapters


# ---------------------------------------------------------------------------------------------
# The synthetic destination


def parse_size(s: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*(|b|k|kb|kib|m|mb|mib|g|gb|gib)\s*", s.lower())
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {s!r} (e.g. 65536, 64KiB, 1MiB)")
    unit = {"": 1, "b": 1, "k": 1024, "kb": 1024, "kib": 1024, "m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
            "g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30}[m.group(2)]
    return int(m.group(1)) * unit


def schema_fingerprint(columns) -> str:
    """shared/core/src/manifest.rs: SHA-256 over each column's name, 0x1F, type, 0x1E."""
    h = hashlib.sha256()
    for name, typ in columns:
        h.update(name.encode() + b"\x1f" + typ.encode() + b"\x1e")
    return h.hexdigest()


def manifest_bytes(m: dict) -> bytes:
    """As serde_json::to_vec_pretty writes it, with the trailing newline (byte-identical for
    these ASCII values)."""
    return (json.dumps(m, indent=2) + "\n").encode()


def rfc3339(t: _dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"  # nanoseconds, as chrono writes them


def text_watermark(t: _dt.datetime) -> dict:
    return {"type": "text", "value": t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]}


def row_pool(rng: random.Random, size: int) -> tuple[bytes, list[int]]:
    """CSV-like rows of random values, about `size` bytes, and where each row starts."""
    rows, starts, n, i = [], [], 0, 0
    base = _dt.datetime(2025, 1, 1)
    while n < size:
        i += 1
        r = rng.getrandbits(96)
        ts = (base + _dt.timedelta(seconds=rng.randrange(31_536_000))).strftime("%Y-%m-%d %H:%M:%S")
        line = (f"{i}|user{i}@example.com|{r & 0xffffffff:08x}|{(r >> 32) & 0xffffff:06x}|"
                f"co{(r >> 56):010x}|{(r % 10000) / 100}|{ts}|{ts}\n").encode()
        starts.append(n)
        rows.append(line)
        n += len(line)
    return b"".join(rows), starts


def generate(dest: Path, runs: int, parts: int, part_bytes: int, seed: int) -> dict:
    """Writes the destination; returns its files, bytes and what verify must report."""
    rng = random.Random(seed)
    header = ("|".join(c for c, _ in COLUMNS) + "\n").encode()
    body_len = part_bytes - len(header)
    if body_len < 1:
        raise SystemExit(f"verify_bench: --part-bytes must be more than the header ({len(header)} bytes)")
    pool, starts = row_pool(rng, max(8 << 20, 2 * body_len + 4096))
    usable = [s for s in starts if s + body_len <= len(pool)]
    columns = [{"name": n, "type": t} for n, t in COLUMNS]
    schema = schema_fingerprint(COLUMNS)
    t0 = _dt.datetime(2026, 1, 1, tzinfo=_dt.timezone.utc)
    previous = None  # (key, sha256)
    low = None
    files = part_total = manifest_total = rows_total = 0
    for i in range(runs):
        second = t0 + _dt.timedelta(seconds=i)
        run_id = second.strftime("%Y%m%dT%H%M%SZ") + f"-{rng.getrandbits(32):08x}"
        folder = f"{EXPORT}/{TABLE}/{run_id}"
        (dest / folder).mkdir(parents=True)
        listed, rows_run, bytes_run = [], 0, 0
        for j in range(parts):
            off = usable[rng.randrange(len(usable))]
            data = header + pool[off:off + body_len - 1] + b"\n"
            key = f"{folder}/part-{j:05d}.csv"
            with open(dest / key, "wb") as f:
                f.write(data)
            rows = data.count(b"\n") - 1
            listed.append({"key": key, "rows": rows, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()})
            rows_run += rows
            bytes_run += len(data)
        # The rows of run i changed in its second: (low, high] with high just before it started.
        high = text_watermark(second - _dt.timedelta(milliseconds=1))
        m = {
            "version": 2, "export": EXPORT, "table": TABLE, "run_id": run_id,
            "strategy": "timestamp", "full_refresh": False,
            "window": {"low": low, "high": high},
            "format": FORMAT, "columns": columns, "parts": listed,
            "totals": {"rows": rows_run, "bytes": bytes_run, "parts": len(listed)},
            "null_rows": 0,
            "started_at": rfc3339(second + _dt.timedelta(microseconds=100_123)),
            "written_at": rfc3339(second + _dt.timedelta(microseconds=400_456)),
        }
        if previous:
            m["previous"] = {"key": previous[0], "sha256": previous[1]}
        m["schema"] = schema
        data = manifest_bytes(m)
        key = f"{folder}/manifest.json"
        with open(dest / key, "wb") as f:  # written last, as a run does
            f.write(data)
        previous = (key, hashlib.sha256(data).hexdigest())
        low = high
        files += parts + 1
        part_total += bytes_run
        manifest_total += len(data)
        rows_total += rows_run
    return {"files": files, "bytes": part_total + manifest_total, "part_bytes": part_total,
            "manifest_bytes": manifest_total, "rows": rows_total, "runs": runs, "parts": runs * parts}


# ---------------------------------------------------------------------------------------------
# Measuring


def measure(name: str, argv: list, logs: Path, env=None) -> dict:
    """Runs argv; wall seconds, exit code and peak RSS (KiB). stdout goes to logs/<name>.out."""
    out, err = logs / f"{name}.out", logs / f"{name}.err"
    argv = [str(a) for a in argv]
    if TIME.exists() and os.access(TIME, os.X_OK):
        tv = logs / f"{name}.time"
        with open(out, "wb") as o, open(err, "wb") as e:
            t0 = time.perf_counter()
            p = subprocess.run([str(TIME), "-v", "-o", str(tv), *argv], stdout=o, stderr=e,
                               stdin=subprocess.DEVNULL, env=env)
            wall = time.perf_counter() - t0
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv.read_text(errors="replace"))
        return {"seconds": wall, "code": p.returncode, "rss_kib": int(m.group(1)) if m else None,
                "rss_source": "time -v", "out": out, "err": err}
    sys.path.insert(0, str(ROOT / "bench"))
    from export_bench import peak_rss_kib, run_measured, self_maxrss_kib
    floor = self_maxrss_kib()
    wall, code, w4, polled = run_measured(argv, out, err, env=env)
    rss, source = peak_rss_kib(w4, polled, floor)
    return {"seconds": wall, "code": code, "rss_kib": rss, "rss_source": source, "out": out, "err": err}


def shell(script: str, *args) -> list:
    return ["bash", "-c", "set -eo pipefail; " + script, "bash", *[str(a) for a in args]]


def tail(path: Path, n=10) -> str:
    try:
        return "\n".join("    " + l for l in path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def sums(path: Path, root: Path) -> dict:
    """sha256sum's output as {path relative to root: hash}."""
    out = {}
    for line in path.read_text().splitlines():
        h, p = line.split(None, 1)
        out[os.path.relpath(p.lstrip("*"), root)] = h
    return out


def check_report(m: dict, expect: dict, where: str) -> str | None:
    """Why sluice verify's report is not the clean one expected (None when it is)."""
    if m["code"] not in (0, 1):
        return f"sluice verify --at {where} exited {m['code']}:\n{tail(m['err'])}"
    try:
        places = json.loads(m["out"].read_text())
    except (OSError, ValueError) as e:
        return f"sluice verify --at {where} printed no JSON report ({e}):\n{tail(m['err'])}"
    findings = [f for p in places for f in p.get("findings", [])]
    tables = [t for p in places for t in p.get("tables", [])]
    m["report"] = {"tables": tables, "findings": len(findings)}
    if findings:
        shown = "\n".join(f"    {f.get('kind')}: {f.get('key') or ''} {f.get('problem')}" for f in findings[:10])
        return f"sluice verify --at {where}: {len(findings)} finding(s) (exit {m['code']}), first:\n{shown}"
    if m["code"] != 0:
        return f"sluice verify --at {where} exited {m['code']} with no findings:\n{tail(m['err'])}"
    got = [(t["runs"], t["parts"], t["bytes"], t["rows"]) for t in tables]
    want = [(expect["runs"], expect["parts"], expect["part_bytes"], expect["rows"])]
    if got != want:
        return f"sluice verify --at {where}: (runs, parts, bytes, rows) {got}, expected {want}"
    return None


# ---------------------------------------------------------------------------------------------
# S3: moto, boto3 helpers (run under .tools/venv's python), the aws CLI


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Moto:
    """moto's server as tests/src/moto.rs starts it: the venv's python running
    tests/moto/server.py on a free loopback port, ready when /moto-api/ answers 200."""

    def __init__(self, log: Path):
        self.port = free_port()
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.log = open(log, "wb")
        self.proc = subprocess.Popen([str(VENV_PY), str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(self.port)],
                                     stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.endpoint + "/moto-api/", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"moto's server did not answer on {self.endpoint} (log: {log})")
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


def aws_env(endpoint: str) -> dict:
    env = dict(os.environ)
    env.update({
        "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
        # No profile or credentials file of the machine's: only the stand-in's settings above.
        "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "RUST_LOG": "warn",
    })
    env.pop("AWS_PROFILE", None)
    env.pop("AWS_SESSION_TOKEN", None)
    return env


def helper_python() -> str:
    return str(VENV_PY) if VENV_PY.exists() else sys.executable


def helper(argv: list) -> int:
    """`verify_bench.py _helper upload|list|get ...`: the boto3 steps, run by the venv's python."""
    import boto3
    from botocore.config import Config
    from concurrent.futures import ThreadPoolExecutor

    ap = argparse.ArgumentParser(prog="verify_bench.py _helper")
    ap.add_argument("what", choices=["upload", "list", "get"])
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--bucket", required=True)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--dir")
    ap.add_argument("--keys")
    ap.add_argument("--threads", type=int, default=16)
    a = ap.parse_args(argv)
    s3 = boto3.client("s3", endpoint_url=a.endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test",
                      config=Config(max_pool_connections=a.threads, s3={"addressing_style": "path"},
                                    retries={"max_attempts": 5, "mode": "standard"}))
    if a.what == "upload":
        s3.create_bucket(Bucket=a.bucket)
        root = Path(a.dir)
        paths = sorted(p for p in root.rglob("*") if p.is_file())
        t0 = time.perf_counter()

        def put(p: Path) -> int:
            data = p.read_bytes()
            s3.put_object(Bucket=a.bucket, Key=f"{a.prefix}/{p.relative_to(root).as_posix()}", Body=data)
            return len(data)

        with ThreadPoolExecutor(a.threads) as pool:
            total = sum(pool.map(put, paths))
        print(json.dumps({"objects": len(paths), "bytes": total, "seconds": time.perf_counter() - t0}))
    elif a.what == "list":
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=a.bucket, Prefix=a.prefix + "/"):
            for o in page.get("Contents", []):
                print(o["Size"], o["Key"])
    else:
        keys = [line.split(" ", 1)[1] for line in Path(a.keys).read_text().splitlines() if line]

        def get(key: str) -> tuple[str, str, int]:
            h, n = hashlib.sha256(), 0
            body = s3.get_object(Bucket=a.bucket, Key=key)["Body"]
            for chunk in iter(lambda: body.read(1 << 20), b""):
                h.update(chunk)
                n += len(chunk)
            return h.hexdigest(), key, n

        with ThreadPoolExecutor(a.threads) as pool:
            for digest, key, _ in pool.map(get, keys):
                print(f"{digest}  {key}")
    return 0


def aws_cli() -> tuple[str | None, str]:
    """The aws CLI's path (past a pyenv shim, whose start-up would be timed too) and version."""
    path = shutil.which("aws")
    if not path:
        return None, "no aws CLI on PATH"
    if "/.pyenv/shims/" in path and shutil.which("pyenv"):
        real = subprocess.run(["pyenv", "which", "aws"], capture_output=True, text=True)
        if real.returncode == 0 and real.stdout.strip():
            path = real.stdout.strip()
    v = subprocess.run([path, "--version"], capture_output=True, text=True)
    version = (v.stdout + v.stderr).strip()
    if v.returncode != 0:
        return None, f"`aws --version` failed (exit {v.returncode}): {version[-300:]}"
    return path, version


def sluice_has_aws(sluice: Path) -> tuple[bool, str]:
    """Asks the binary for an S3 location at a closed port: a build without the aws feature
    says so at once."""
    env = aws_env(f"http://127.0.0.1:{free_port()}")
    try:
        p = subprocess.run([str(sluice), "verify", "--at", f"s3://{BUCKET}-probe/none", "--json"],
                           capture_output=True, text=True, env=env, timeout=60)
    except subprocess.TimeoutExpired:
        return True, ""
    if AWS_HINT in p.stderr:
        line = next((l for l in p.stderr.splitlines() if AWS_HINT in l), p.stderr.strip())
        return False, line.strip()
    return True, ""


# ---------------------------------------------------------------------------------------------


def mib(n) -> str:
    return "-" if n is None else f"{n / 1048576:.1f}"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "_helper":
        return helper(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=1000, help="committed runs of the table (default 1000)")
    ap.add_argument("--parts", type=int, default=10, help="parts per run (default 10)")
    ap.add_argument("--part-bytes", type=parse_size, default=64 * 1024, help="bytes per part (default 64KiB)")
    ap.add_argument("--sluice", default="target/release/sluice", help="the binary under test (relative to the repo root)")
    s3_group = ap.add_mutually_exclusive_group()
    s3_group.add_argument("--s3", dest="s3", action="store_true", default=None, help="require the S3 half")
    s3_group.add_argument("--no-s3", dest="s3", action="store_false", help="skip the S3 half")
    ap.add_argument("--upload-threads", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=str(ROOT / ".bench" / "work"))
    ap.add_argument("--keep", action="store_true", help="keep the generated tree (and the S3 download)")
    args = ap.parse_args()
    if args.runs < 1 or args.parts < 1:
        ap.error("--runs and --parts must be at least 1")

    sluice = Path(args.sluice)
    if not sluice.is_absolute():
        sluice = ROOT / sluice
    if not (sluice.is_file() and os.access(sluice, os.X_OK)):
        print(f"verify_bench: {sluice} is missing; build it with: {BUILD} (with --features aws for S3), "
              f"or pass --sluice PATH", file=sys.stderr)
        return 2
    work = Path(args.workdir) / "verify"
    logs = work / "logs"
    dest, download = work / "dest", work / "download"
    for d in (dest, download):
        shutil.rmtree(d, ignore_errors=True)
    logs.mkdir(parents=True, exist_ok=True)

    ok, incomplete, notes = True, False, []
    rows: list[dict] = []  # the printed table
    results: dict = {"runs": args.runs, "parts": args.parts, "part_bytes": args.part_bytes, "sluice": str(sluice)}

    def row(section, tool, m, files, nbytes, note=""):
        m = m or {}
        rss = m.get("rss_kib")
        if m.get("code"):
            if tool != "sluice verify":  # check_report said why
                print(f"verify_bench: {tool} ({section}) exited {m['code']}:\n{tail(m['err'])}", file=sys.stderr)
            note = (note + "; " if note else "") + f"exit {m['code']}"
        r = {"section": section, "tool": tool, "seconds": m.get("seconds"), "code": m.get("code"),
             "peak_rss_mib": None if rss is None else rss / 1024, "rss_source": m.get("rss_source"),
             "files": files, "bytes": nbytes, "note": note}
        if "report" in m:
            r["report"] = m["report"]
        rows.append(r)
        return r

    try:
        # 1. The destination.
        t0 = time.perf_counter()
        expect = generate(dest, args.runs, args.parts, args.part_bytes, args.seed)
        os.sync()  # no writeback under the timed tools
        gen_s = time.perf_counter() - t0
        results["generated"] = dict(expect, seconds=gen_s)
        print(f"generated {expect['runs']:,} runs x {args.parts} parts of {args.part_bytes:,} B: "
              f"{expect['files']:,} files, {mib(expect['bytes'])} MiB in {gen_s:.1f} s ({dest})")

        # 2. sluice verify on the folder: the generated data must be clean.
        m = measure("folder-sluice", [sluice, "verify", "--at", dest, "--json"], logs)
        why = check_report(m, expect, str(dest))
        if why:
            print(f"verify_bench: {why}", file=sys.stderr)
            ok = False
        row("folder", "sluice verify", m, expect["files"], expect["bytes"], "clean" if not why else "NOT CLEAN")

        # 3. The references on the folder.
        m = measure("folder-find", ["find", dest, "-type", "f"], logs)
        listed = len(m["out"].read_text().splitlines()) if m["code"] == 0 else None
        row("folder", "find -type f", m, listed, None)
        m = measure("folder-sha256sum", shell('find "$1" -type f -print0 | xargs -0 sha256sum', dest), logs)
        folder_sums = sums(m["out"], dest) if m["code"] == 0 else {}
        row("folder", "find | xargs sha256sum", m, len(folder_sums), expect["bytes"] if folder_sums else None)
        if listed != expect["files"] or len(folder_sums) != expect["files"]:
            print(f"verify_bench: the folder references saw {listed} / {len(folder_sums)} files, "
                  f"expected {expect['files']}", file=sys.stderr)
            ok = False

        # 4. S3.
        if args.s3 is False:
            notes.append("S3: skipped (--no-s3)")
        else:
            run_sluice_s3, reason = sluice_has_aws(sluice)
            if not run_sluice_s3 and not args.s3:
                notes.append(f"S3: skipped: this sluice was built without the aws feature (it says so for an "
                             f"s3:// location); build it with `{BUILD_AWS}` (pass --s3 to require S3)")
                results["s3_skipped"] = reason
            elif not VENV_PY.exists():
                msg = f"S3: skipped: {VENV_PY} is missing (scripts/setup.sh installs moto's server there)"
                notes.append(msg)
                if args.s3:
                    incomplete = True
            else:
                if not run_sluice_s3:
                    notes.append(f"S3: sluice verify skipped: this sluice was built without the aws feature; "
                                 f"build it with `{BUILD_AWS}`")
                    results["s3_skipped"] = reason
                    incomplete = True
                ok &= s3_half(args, sluice, run_sluice_s3, expect, work, logs, download, folder_sums, row, notes, results)
                if results.get("s3_unavailable"):
                    incomplete |= bool(args.s3)
    finally:
        if not args.keep:
            if dest.exists():
                print(f"removing {dest} (--keep keeps it)")
            shutil.rmtree(dest, ignore_errors=True)
            shutil.rmtree(download, ignore_errors=True)

    # 5. The table.
    print()
    print(f"{'where':<8}{'tool':<30}{'wall s':>9}{'peak RSS MiB':>14}{'files':>9}{'MiB':>9}  note")
    for r in rows:
        secs = "-" if r["seconds"] is None else f"{r['seconds']:.2f}"
        rss = "-" if r["peak_rss_mib"] is None else f"{r['peak_rss_mib']:.1f}"
        files = "-" if r["files"] is None else f"{r['files']:,}"
        print(f"{r['section']:<8}{r['tool']:<30}{secs:>9}{rss:>14}{files:>9}{mib(r['bytes']):>9}  {r['note']}")
    by = {(r["section"], r["tool"]): r for r in rows}
    for section, ref in (("folder", "find | xargs sha256sum"), ("S3", "(total)")):
        s, t = by.get((section, "sluice verify")), by.get((section, ref))
        if s and t and s["seconds"] and t["seconds"]:
            print(f"{section}: sluice verify / {ref} = {s['seconds'] / t['seconds']:.2f} (wall)")
    for n in notes:
        print(f"note: {n}")
    rss_sources = sorted({r["rss_source"] for r in rows if r["rss_source"]})
    if rss_sources:
        print(f"peak RSS from: {', '.join(rss_sources)}")
    results["rows"] = rows
    results["notes"] = notes
    out = Path(args.workdir) / f"verify-results-{args.runs}x{args.parts}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {out}")
    if not ok:
        return 1
    return 2 if incomplete else 0


def s3_half(args, sluice, run_sluice, expect, work, logs, download, folder_sums, row, notes, results) -> bool:
    """Upload to moto, time sluice verify and the references there; False when a check failed."""
    ok = True
    try:
        moto = Moto(logs / "moto.log")
    except RuntimeError as e:
        notes.append(f"S3: skipped: {e}")
        results["s3_unavailable"] = True
        return True
    try:
        env = aws_env(moto.endpoint)
        py = helper_python()
        up = subprocess.run([py, __file__, "_helper", "upload", "--endpoint", moto.endpoint, "--bucket", BUCKET,
                             "--prefix", PREFIX, "--dir", work / "dest", "--threads", str(args.upload_threads)],
                            capture_output=True, text=True)
        if up.returncode != 0:
            print(f"verify_bench: the upload to moto failed:\n{up.stderr[-2000:]}", file=sys.stderr)
            return False
        u = json.loads(up.stdout)
        results["upload"] = u
        print(f"uploaded {u['objects']:,} objects, {mib(u['bytes'])} MiB to {moto.endpoint} in "
              f"{u['seconds']:.1f} s ({args.upload_threads} threads)")
        where = f"s3://{BUCKET}/{PREFIX}"

        if run_sluice:
            m = measure("s3-sluice", [sluice, "verify", "--at", where, "--json"], logs, env=env)
            why = check_report(m, expect, where)
            if why:
                print(f"verify_bench: {why}", file=sys.stderr)
                ok = False
            row("S3", "sluice verify", m, expect["files"], expect["bytes"], "clean" if not why else "NOT CLEAN")
        else:
            row("S3", "sluice verify", None, None, None, "skipped: no aws feature")

        aws, version = aws_cli()
        results["aws_cli"] = version
        steps = []
        if aws:
            m = measure("s3-aws-ls", [aws, "s3", "ls", "--recursive", where + "/", "--endpoint-url", moto.endpoint],
                        logs, env=env)
            listed = [l.split(None, 3) for l in m["out"].read_text().splitlines() if l.strip()]
            steps.append(row("S3", "aws s3 ls --recursive", m, len(listed), None))
            m = measure("s3-aws-cp", [aws, "s3", "cp", "--recursive", "--only-show-errors", where + "/", download,
                                      "--endpoint-url", moto.endpoint], logs, env=env)
            got = sum(1 for p in download.rglob("*") if p.is_file()) if download.exists() else 0
            size = sum(p.stat().st_size for p in download.rglob("*") if p.is_file()) if download.exists() else 0
            steps.append(row("S3", "aws s3 cp --recursive", m, got, size))
            m = measure("s3-sha256sum", shell('find "$1" -type f -print0 | xargs -0 sha256sum', download), logs)
            s3_sums = sums(m["out"], download) if m["code"] == 0 else {}
            steps.append(row("S3", "find | xargs sha256sum", m, len(s3_sums), size))
            label = f"aws CLI ({version.split()[0]})"
        else:
            notes.append(f"S3 reference: {version}; boto3 list + get + hashlib ({GET_THREADS} threads) stands in")
            m = measure("s3-boto3-list", [helper_python(), __file__, "_helper", "list", "--endpoint", moto.endpoint,
                                          "--bucket", BUCKET, "--prefix", PREFIX], logs)
            listed = [l for l in m["out"].read_text().splitlines() if l] if m["code"] == 0 else []
            steps.append(row("S3", "boto3 list", m, len(listed), None))
            m = measure("s3-boto3-get", [helper_python(), __file__, "_helper", "get", "--endpoint", moto.endpoint,
                                         "--bucket", BUCKET, "--keys", logs / "s3-boto3-list.out",
                                         "--threads", str(GET_THREADS)], logs)
            s3_sums = {}
            if m["code"] == 0:
                for line in m["out"].read_text().splitlines():
                    h, key = line.split(None, 1)
                    s3_sums[key[len(PREFIX) + 1:]] = h
            steps.append(row("S3", f"boto3 get+sha256 ({GET_THREADS} thr)", m, len(s3_sums),
                             expect["bytes"] if s3_sums else None))
            label = "boto3"
        failed = [s["tool"] for s in steps if s["code"]]
        total = {"seconds": sum(s["seconds"] for s in steps),
                 "rss_kib": max((s["peak_rss_mib"] or 0) for s in steps) * 1024, "rss_source": steps[0]["rss_source"]}
        row("S3", "(total)", total, len(s3_sums), expect["bytes"] if s3_sums else None,
            f"{label}: sum of the steps, largest RSS")
        if failed:
            ok = False  # row() said why
        elif s3_sums != folder_sums:
            differ = sum(1 for k in set(s3_sums) | set(folder_sums) if s3_sums.get(k) != folder_sums.get(k))
            print(f"verify_bench: the S3 reference's hashes differ from the folder's for {differ} file(s) "
                  f"({len(s3_sums)} hashed from S3, {len(folder_sums)} from the folder)", file=sys.stderr)
            ok = False
    finally:
        moto.stop()
    return ok


if __name__ == "__main__":
    sys.exit(main())
