#!/usr/bin/env python3
"""Figures of the export function (issue: the export Lambda).

1. Cold start: time from process start to the function's first poll of the Lambda Runtime
   API (GET /runtime/invocation/next), for the release binary, over --runs starts; median.
2. The stripped release binary's size.
3. Peak RSS of one invocation that exports the benchmark contacts table (about 1 GB of CSV
   at 10M rows) to moto's S3 as one multipart object, with the history in moto's DynamoDB.

A small Runtime API stand-in (this script) serves the invocation; moto's server comes from
.tools/venv (scripts/setup.sh). Build first: cargo build --release -p sluice-export-fn
"""
import argparse, json, os, socket, statistics, subprocess, sys, tempfile, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p


class RuntimeApi:
    """The Lambda Runtime API, enough for one function process: hands out queued events."""

    def __init__(self):
        self.first_poll = None
        self.events = []
        self.result = None
        self.done = threading.Event()
        api = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                if api.first_poll is None:
                    api.first_poll = time.perf_counter()
                while not api.events:
                    time.sleep(0.005)
                    if api.done.is_set():
                        self.send_response(500); self.end_headers(); return
                body = json.dumps(api.events.pop(0)).encode()
                self.send_response(200)
                self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
                self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 900_000))
                self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:111122223333:function:sluice-export")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                api.result = (self.path, self.rfile.read(n).decode())
                self.send_response(202); self.end_headers()
                api.done.set()

        self.port = free_port()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.done.set(); self.server.shutdown()


def lambda_env(api_port, extra):
    env = dict(os.environ)
    env.update({
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api_port}",
        "AWS_LAMBDA_FUNCTION_NAME": "sluice-export", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "512", "AWS_LAMBDA_LOG_GROUP_NAME": "bench",
        "AWS_LAMBDA_LOG_STREAM_NAME": "bench", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "RUST_LOG": "warn",
    })
    env.update(extra)
    return env


def vmhwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        return None


def write_config(path, db, bucket):
    with open(path, "w") as f:
        f.write(f'''version = 1
[sources.bench]
kind = "sqlite"
path = "{db}"

[[export]]
name = "bench"
source = "bench"
destination = "s3://{bucket}/exports"
format = {{ kind = "csv", delimiter = "|", header = true, compression = "none", max_file_size = "4GiB" }}

  [[export.table]]
  name = "contacts"
  incremental = {{ strategy = "timestamp", column = "updated_at" }}
''')


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="target/release/sluice-export")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--rows", type=int, default=10_000_000, help="contacts rows for the upload (10M is about 1 GB of CSV)")
    ap.add_argument("--skip-upload", action="store_true")
    a = ap.parse_args()
    binary = os.path.join(ROOT, a.bin)
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: build it first with cargo build --release -p sluice-export-fn")
    work = tempfile.mkdtemp(prefix="sluice-lambda-bench-")
    config = os.path.join(work, "sluice.toml")
    write_config(config, os.path.join(work, "none.db"), "bench")
    base = {"SLUICE_CONFIG": config, "SLUICE_HISTORY_TABLE": "bench-history"}

    starts = []
    for _ in range(a.runs):
        api = RuntimeApi()
        t0 = time.perf_counter()
        p = subprocess.Popen([binary], env=lambda_env(api.port, base), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        while api.first_poll is None and p.poll() is None and time.perf_counter() - t0 < 10:
            time.sleep(0.0005)
        if api.first_poll is None:
            sys.exit(f"the function exited or never polled (exit {p.poll()})")
        starts.append((api.first_poll - t0) * 1000)
        p.kill(); p.wait(); api.close()
    size = os.path.getsize(binary)
    print(f"cold start to first poll: median {statistics.median(starts):.1f} ms, min {min(starts):.1f} ms, max {max(starts):.1f} ms over {a.runs} starts")
    print(f"binary size (stripped release): {size / 1048576:.1f} MiB")
    if a.skip_upload:
        return

    db = os.path.join(ROOT, ".bench/work", f"contacts-{a.rows}.db")
    subprocess.run(["bash", os.path.join(ROOT, "bench/gen_contacts.sh"), str(a.rows), db], check=True)
    moto_port = free_port()
    moto = subprocess.Popen([os.path.join(ROOT, ".tools/venv/bin/moto_server"), "-H", "127.0.0.1", "-p", str(moto_port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{moto_port}"
    try:
        sys.path.insert(0, "")
        import importlib
        py = os.path.join(ROOT, ".tools/venv/bin/python")
        setup = f'''
import boto3, time
for _ in range(200):
    try:
        s3 = boto3.client("s3", endpoint_url="{endpoint}", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
        s3.create_bucket(Bucket="bench"); break
    except Exception:
        time.sleep(0.05)
ddb = boto3.client("dynamodb", endpoint_url="{endpoint}", region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t")
ddb.create_table(TableName="bench-history", BillingMode="PAY_PER_REQUEST",
  AttributeDefinitions=[{{"AttributeName": "pk", "AttributeType": "S"}}, {{"AttributeName": "sk", "AttributeType": "S"}}],
  KeySchema=[{{"AttributeName": "pk", "KeyType": "HASH"}}, {{"AttributeName": "sk", "KeyType": "RANGE"}}])
'''
        subprocess.run([py, "-c", setup], check=True)
        write_config(config, db, "bench")
        api = RuntimeApi()
        api.events.append({"export": "bench"})
        env = lambda_env(api.port, dict(base, AWS_ENDPOINT_URL=endpoint))
        t0 = time.perf_counter()
        p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        peak = 0
        while not api.done.is_set() and p.poll() is None:
            peak = max(peak, vmhwm(p.pid) or 0)
            time.sleep(0.05)
        wall = time.perf_counter() - t0
        peak = max(peak, vmhwm(p.pid) or 0)
        p.kill(); p.wait(); api.close()
        path, body = api.result or ("(none)", p.stderr.read().decode()[-2000:])
        print(f"invocation result at {path}")
        try:
            s = json.loads(body)
            print(f"upload: {s['rows']:,} rows, {s['bytes'] / 1048576:.1f} MiB in {s['parts']} part(s) to moto S3 in {wall:.1f} s; peak RSS {peak / 1024:.1f} MiB")
        except Exception:
            print(body)
    finally:
        moto.kill(); moto.wait()


if __name__ == "__main__":
    main()
