"""fakesnow's server, made to speak the protocol snowflake-connector-rs speaks.

fakesnow (DuckDB behind Snowflake's HTTP API) is the Snowflake stand-in of Sluice's tests. Its
server differs from Snowflake in ways the Rust connector notices; this wrapper closes those gaps
and adds what a test needs that fakesnow cannot do, and nothing else:

- login: the Rust connector sends no ``data.SESSION_PARAMETERS``, which fakesnow requires; the
  adapter adds an empty one. With ``--users FILE`` it also checks credentials the way Snowflake
  does (password, OAuth token, or key-pair JWT signed by the user's registered public key) and
  answers Snowflake's error codes, so wrong credentials can be tested.
- results: fakesnow answers SELECTs in Arrow (``rowsetBase64``); the Rust connector reads only
  JSON rowsets. The adapter decodes the Arrow batch and answers Snowflake's JSON ``rowset``:
  every value a string, timestamps as ``epoch.fraction`` with 9 fraction digits (TIMESTAMP_TZ
  followed by its offset in minutes + 1440), dates as days since the epoch, times as seconds
  since midnight, booleans as ``1``/``0``, binary as upper-case hex. Results larger than
  ``--chunk-rows`` come back as Snowflake sends them: the first rows inline, the rest as gzip
  chunks fetched from ``/adapter/chunks/...``, so the connector's streaming path runs.
- unload: fakesnow cannot ``COPY INTO @stage``. The adapter answers such a statement with the
  ``DETAILED_OUTPUT`` result set a test set beforehand (``POST /adapter/unload``), and records it.
- errors: fakesnow's failed-query answers carry no ``data.queryId``, which the Rust connector
  requires; the adapter adds one.
- slow queries: ``POST /adapter/delay`` with ``{"match": TEXT, "seconds": N}`` holds the next
  query whose SQL contains TEXT for N seconds before running it, as a resuming warehouse or a
  long scan would; abort requests (a client cancelling) are recorded as ``{"abort": requestId}``.
- ``GET /adapter/statements`` lists the SQL text and bindings received, and the aborts, for
  tests to check what was sent; ``POST /adapter/reset`` clears that record.

Run: ``python adapter.py --host 127.0.0.1 --port PORT [--chunk-rows N] [--users FILE]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import gzip
import importlib
import json
import secrets
import threading
from decimal import Decimal
from typing import Any

import pyarrow as pa
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

# `fakesnow.server` the module, not the `fakesnow.server()` helper its package exports.
fs_server = importlib.import_module("fakesnow.server")

DEFAULT_CHUNK_ROWS = 50_000
EPOCH_DATE = dt.date(1970, 1, 1)


# ---------------------------------------------------------------------------------------------
# Arrow → Snowflake JSON rowset
# ---------------------------------------------------------------------------------------------


def epoch_fraction(epoch: int, fraction: int) -> str:
    """Seconds since the epoch with 9 fraction digits, as Snowflake's JSON rowset writes them.

    Arrow's struct splits a value into whole seconds (floored) and nanoseconds (non-negative);
    the text is the value itself, so -0.5 s is ``-0.500000000``.
    """
    total = epoch * 1_000_000_000 + fraction
    sign = "-" if total < 0 else ""
    whole, frac = divmod(abs(total), 1_000_000_000)
    return f"{sign}{whole}.{frac:09d}"


def cell_text(value: Any, logical: str, scale: int) -> str | None:
    """One Arrow value as the string Snowflake's JSON rowset would carry."""
    if value is None:
        return None
    if logical in ("TIMESTAMP_NTZ", "TIMESTAMP_LTZ", "TIMESTAMP_TZ"):
        if value.get("epoch") is None:
            # fakesnow builds the struct from its fields, so a NULL shows as a struct of NULLs.
            return None
        text = epoch_fraction(value["epoch"], value["fraction"])
        if logical == "TIMESTAMP_TZ":
            # Snowflake appends the offset in minutes, biased by 1440 so it is never negative.
            return f"{text} {value.get('timezone', 1440)}"
        return text
    if logical == "DATE":
        return str((value - EPOCH_DATE).days)
    if logical == "TIME":
        # fakesnow sends a time as nanoseconds since midnight.
        whole, frac = divmod(int(value), 1_000_000_000)
        return f"{whole}.{frac:09d}"
    if logical == "BOOLEAN":
        return "1" if value else "0"
    if logical == "BINARY":
        return bytes(value).hex().upper()
    if logical == "FIXED":
        if isinstance(value, Decimal):
            return f"{value:.{scale}f}" if scale else str(int(value))
        return str(value)
    if logical == "REAL":
        return repr(float(value))
    return value if isinstance(value, str) else str(value)


def arrow_rows(rowset_b64: str) -> tuple[pa.Table, list[tuple[str, int]]]:
    """Decodes fakesnow's Arrow IPC rowset; returns the table and each column's type and scale."""
    reader = pa.ipc.open_stream(base64.b64decode(rowset_b64))
    table = reader.read_all()
    kinds = []
    for field in table.schema:
        meta = {k.decode(): v.decode() for k, v in (field.metadata or {}).items()}
        kinds.append((meta.get("logicalType", "TEXT"), int(meta.get("scale", "0") or 0)))
    return table, kinds


def json_rows(table: pa.Table, kinds: list[tuple[str, int]], start: int, stop: int) -> list[list[str | None]]:
    part = table.slice(start, stop - start)
    columns = [
        [cell_text(v, logical, scale) for v in col.to_pylist()] for col, (logical, scale) in zip(part.columns, kinds)
    ]
    return [list(row) for row in zip(*columns)] if columns else []


# ---------------------------------------------------------------------------------------------
# Credentials
# ---------------------------------------------------------------------------------------------


def public_key_fingerprint(public_key_pem: str) -> str:
    """``SHA256:<base64>`` of the DER public key: what Snowflake stores as RSA_PUBLIC_KEY_FP."""
    from cryptography.hazmat.primitives import hashes, serialization

    key = serialization.load_pem_public_key(public_key_pem.encode())
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return "SHA256:" + base64.b64encode(digest.finalize()).decode()


def check_login(users: dict[str, Any] | None, data: dict[str, Any]) -> str | None:
    """None when the login is accepted; otherwise Snowflake's error code for it.

    ``users`` maps a user name to any of ``password``, ``token`` (OAuth) and ``public_key`` (PEM).
    """
    if users is None:
        return None
    user = users.get(str(data.get("LOGIN_NAME", "")).upper()) or users.get(str(data.get("LOGIN_NAME", "")))
    authenticator = data.get("AUTHENTICATOR", "SNOWFLAKE")
    if user is None:
        return "390100"
    if authenticator == "OAUTH":
        return None if user.get("token") and secrets.compare_digest(user["token"], data.get("TOKEN", "")) else "390303"
    if authenticator == "SNOWFLAKE_JWT":
        import jwt

        if not user.get("public_key"):
            return "390144"
        try:
            claims = jwt.decode(data.get("TOKEN", ""), user["public_key"], algorithms=["RS256"])
        except jwt.PyJWTError:
            return "390144"
        return None if str(claims.get("iss", "")).endswith(public_key_fingerprint(user["public_key"])) else "390144"
    password = user.get("password")
    return None if password and secrets.compare_digest(password, data.get("PASSWORD", "")) else "390100"


LOGIN_ERRORS = {
    "390100": "Incorrect username or password was specified.",
    "390144": "JWT token is invalid.",
    "390303": "Invalid OAuth access token.",
}


# ---------------------------------------------------------------------------------------------
# The app
# ---------------------------------------------------------------------------------------------


class Adapter:
    def __init__(self, chunk_rows: int = DEFAULT_CHUNK_ROWS, users: dict[str, Any] | None = None):
        self.chunk_rows = chunk_rows
        self.users = users
        self.lock = threading.Lock()
        self.statements: list[dict[str, Any]] = []
        self.unload_result: dict[str, Any] | None = None
        # (text the SQL must contain, seconds to hold it): slow queries set by tests.
        self.delays: list[tuple[str, float]] = []
        # query id → (table, kinds): the rows of a result that are served as chunks.
        self.results: dict[str, tuple[pa.Table, list[tuple[str, int]]]] = {}
        self.app = Starlette(
            routes=[
                Route("/session/v1/login-request", self.login, methods=["POST"]),
                Route("/queries/v1/query-request", self.query, methods=["POST"]),
                Route("/adapter/chunks/{qid}/{n:int}", self.chunk, methods=["GET"]),
                Route("/adapter/statements", self.list_statements, methods=["GET"]),
                Route("/adapter/unload", self.set_unload, methods=["POST"]),
                Route("/adapter/reset", self.reset, methods=["POST"]),
                Route("/adapter/delay", self.set_delay, methods=["POST"]),
                Route("/queries/v1/abort-request", self.abort, methods=["POST"]),
                # Everything else (sessions, heartbeat, abort, monitoring) is fakesnow's own.
                *[
                    r
                    for r in fs_server.routes
                    if r.path
                    not in ("/session/v1/login-request", "/queries/v1/query-request", "/queries/v1/abort-request")
                ],
            ]
        )

    async def __call__(self, scope, receive, send):
        await self.app(scope, receive, send)

    @staticmethod
    async def json_body(request: Request) -> dict[str, Any]:
        body = await request.body()
        if request.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return json.loads(body)

    @staticmethod
    def with_body(request: Request, body: dict[str, Any]) -> Request:
        """The same request carrying ``body`` as plain JSON, for fakesnow's handler."""
        scope = dict(request.scope)
        scope["headers"] = [(k, v) for k, v in request.scope["headers"] if k.lower() != b"content-encoding"]
        inner = Request(scope, request.receive)
        inner._body = json.dumps(body).encode()  # noqa: SLF001 - Starlette's cached body
        return inner

    async def login(self, request: Request) -> Response:
        body = await self.json_body(request)
        data = body.setdefault("data", {})
        data.setdefault("SESSION_PARAMETERS", {})
        if code := check_login(self.users, data):
            # Snowflake answers a refused login with HTTP 200 and success = false.
            return JSONResponse({"data": None, "code": code, "message": LOGIN_ERRORS[code], "success": False})
        return await fs_server.login_request(self.with_body(request, body))

    async def query(self, request: Request) -> Response:
        body = await self.json_body(request)
        sql = body.get("sqlText", "")
        with self.lock:
            self.statements.append({"sqlText": sql, "bindings": body.get("bindings")})
        with self.lock:
            delay = next((d for d in self.delays if d[0] in sql), None)
            if delay:
                self.delays.remove(delay)
        if delay:
            await asyncio.sleep(delay[1])
        if sql.lstrip().upper().startswith("COPY INTO @"):
            return self.unload_response()
        response = await fs_server.query_request(self.with_body(request, body))
        answer = json.loads(response.body)
        data = answer.get("data") or {}
        if not answer.get("success") and isinstance(answer.get("data"), dict):
            # Snowflake names the failed query; the Rust connector requires it.
            data.setdefault("queryId", secrets.token_hex(8))
        if answer.get("success") and data.get("queryResultFormat") == "arrow":
            self.to_json_rowset(request, data)
        return JSONResponse(answer, status_code=response.status_code)

    def to_json_rowset(self, request: Request, data: dict[str, Any]) -> None:
        encoded = data.pop("rowsetBase64", "")
        data["queryResultFormat"] = "json"
        if not encoded:
            data["rowset"] = []
            data["returned"] = 0
            return
        table, kinds = arrow_rows(encoded)
        inline = min(table.num_rows, self.chunk_rows)
        data["rowset"] = json_rows(table, kinds, 0, inline)
        data["returned"] = inline
        data["total"] = table.num_rows
        if table.num_rows > inline:
            qid = data["queryId"]
            with self.lock:
                self.results[qid] = (table, kinds)
            base = f"{request.url.scheme}://{request.url.netloc}"
            data["chunks"] = [
                {
                    "url": f"{base}/adapter/chunks/{qid}/{n}",
                    "rowCount": min(self.chunk_rows, table.num_rows - start),
                    # Sizes are hints to the connector; the body is what it parses.
                    "uncompressedSize": 0,
                    "compressedSize": 0,
                }
                for n, start in enumerate(range(inline, table.num_rows, self.chunk_rows))
            ]
            data["chunkHeaders"] = {}

    async def chunk(self, request: Request) -> Response:
        qid, n = request.path_params["qid"], request.path_params["n"]
        with self.lock:
            result = self.results.get(qid)
        if result is None:
            return Response(status_code=404)
        table, kinds = result
        start = min(self.chunk_rows, table.num_rows) + n * self.chunk_rows
        rows = json_rows(table, kinds, start, min(start + self.chunk_rows, table.num_rows))
        # A chunk is a sequence of row arrays without the enclosing brackets, gzipped.
        body = ",".join(json.dumps(r, separators=(",", ":")) for r in rows).encode()
        if start + self.chunk_rows >= table.num_rows:
            with self.lock:
                self.results.pop(qid, None)
        return Response(gzip.compress(body, 1), media_type="application/octet-stream")

    def unload_response(self) -> Response:
        with self.lock:
            result = self.unload_result
        if result is None:
            return JSONResponse(
                {
                    "data": {"errorCode": "002003", "sqlState": "02000", "queryId": secrets.token_hex(8)},
                    "code": "002003",
                    "message": "the test adapter has no unload result: POST one to /adapter/unload first",
                    "success": False,
                }
            )
        if error := result.get("error"):
            # An unload that fails the way Snowflake reports failures (e.g. a stage it cannot write).
            return JSONResponse(
                {
                    "data": {"errorCode": error["code"], "sqlState": "42000", "queryId": secrets.token_hex(8)},
                    "code": error["code"],
                    "message": error["message"],
                    "success": False,
                }
            )
        files = result.get("files", [])
        rowtype = [
            {"name": "FILE_NAME", "type": "text", "nullable": False, "length": 1024, "scale": None, "precision": None},
            {"name": "FILE_SIZE", "type": "fixed", "nullable": False, "length": None, "scale": 0, "precision": 19},
            {"name": "ROW_COUNT", "type": "fixed", "nullable": False, "length": None, "scale": 0, "precision": 19},
        ]
        rowset = [[f["name"], str(f["size"]), str(f["rows"])] for f in files]
        return JSONResponse(
            {
                "data": {
                    "rowtype": rowtype,
                    "rowset": rowset,
                    "total": len(rowset),
                    "returned": len(rowset),
                    "queryId": secrets.token_hex(8),
                    "queryResultFormat": "json",
                    "statementTypeId": 0x3000,
                },
                "success": True,
            }
        )

    async def list_statements(self, _request: Request) -> Response:
        with self.lock:
            return JSONResponse(list(self.statements))

    async def set_unload(self, request: Request) -> Response:
        result = await self.json_body(request)
        with self.lock:
            self.unload_result = result
        return JSONResponse({"ok": True})

    async def set_delay(self, request: Request) -> Response:
        body = await self.json_body(request)
        with self.lock:
            self.delays.append((body["match"], float(body["seconds"])))
        return JSONResponse({"ok": True})

    async def abort(self, request: Request) -> Response:
        body = await self.json_body(request)
        with self.lock:
            self.statements.append({"abort": body.get("requestId")})
        return JSONResponse({"data": None, "code": None, "message": None, "success": True})

    async def reset(self, _request: Request) -> Response:
        with self.lock:
            self.statements.clear()
            self.unload_result = None
        return JSONResponse({"ok": True})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--chunk-rows", type=int, default=DEFAULT_CHUNK_ROWS, help="rows per result chunk")
    parser.add_argument("--users", help="JSON file: user → password / token / public_key (PEM)")
    args = parser.parse_args()
    users = None
    if args.users:
        with open(args.users) as f:
            users = {k.upper(): v for k, v in json.load(f).items()}

    import uvicorn

    uvicorn.run(Adapter(args.chunk_rows, users), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
