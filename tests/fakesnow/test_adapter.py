"""Tests of the fakesnow adapter: the conversions unit by unit, then the server over HTTP.

Run with the project venv: ``.tools/venv/bin/python -m unittest discover -s tests/fakesnow``
(the Rust test ``sluice-testkit``'s ``fakesnow_adapter`` does this).
"""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import json
import socket
import threading
import time
import unittest
import urllib.request
from decimal import Decimal

import adapter


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Conversions(unittest.TestCase):
    def test_epoch_fraction_has_nine_digits_and_the_sign_of_the_value(self):
        self.assertEqual(adapter.epoch_fraction(1_700_000_000, 5), "1700000000.000000005")
        self.assertEqual(adapter.epoch_fraction(0, 0), "0.000000000")
        # Arrow floors the seconds: -0.5 s is epoch -1, fraction 0.5e9.
        self.assertEqual(adapter.epoch_fraction(-1, 500_000_000), "-0.500000000")

    def test_cells_render_as_snowflake_json_rowsets_do(self):
        c = adapter.cell_text
        self.assertIsNone(c(None, "TEXT", 0))
        self.assertIsNone(c({"epoch": None, "fraction": None}, "TIMESTAMP_NTZ", 9))
        self.assertEqual(c({"epoch": 86400, "fraction": 1}, "TIMESTAMP_NTZ", 9), "86400.000000001")
        self.assertEqual(c({"epoch": 0, "fraction": 0, "timezone": 1560}, "TIMESTAMP_TZ", 9), "0.000000000 1560")
        self.assertEqual(c(dt.date(1970, 1, 3), "DATE", 0), "2")
        self.assertEqual(c(3_600_500_000_000, "TIME", 9), "3600.500000000")
        self.assertEqual(c(True, "BOOLEAN", 0), "1")
        self.assertEqual(c(False, "BOOLEAN", 0), "0")
        self.assertEqual(c(b"\xab\xcd", "BINARY", 0), "ABCD")
        self.assertEqual(c(Decimal("12.5"), "FIXED", 2), "12.50")
        self.assertEqual(c(Decimal("7"), "FIXED", 0), "7")
        self.assertEqual(c(42, "FIXED", 0), "42")
        self.assertEqual(c(1.5, "REAL", 0), "1.5")
        self.assertEqual(c('{"a":1}', "VARIANT", 0), '{"a":1}')

    def test_a_password_login_is_checked_against_the_users_file(self):
        users = {"SLUICE": {"password": "right"}}
        self.assertIsNone(adapter.check_login(None, {"LOGIN_NAME": "x"}))
        self.assertIsNone(adapter.check_login(users, {"LOGIN_NAME": "sluice", "PASSWORD": "right"}))
        self.assertEqual(adapter.check_login(users, {"LOGIN_NAME": "sluice", "PASSWORD": "wrong"}), "390100")
        self.assertEqual(adapter.check_login(users, {"LOGIN_NAME": "other", "PASSWORD": "right"}), "390100")
        oauth = {"LOGIN_NAME": "SLUICE", "AUTHENTICATOR": "OAUTH", "TOKEN": "t"}
        self.assertEqual(adapter.check_login(users, oauth), "390303")

    def test_a_key_pair_login_needs_a_jwt_signed_by_the_registered_key(self):
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        def keypair():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            pem = key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return key, pem.decode()

        key, public = keypair()
        other, _ = keypair()
        users = {"SLUICE": {"public_key": public}}
        fp = adapter.public_key_fingerprint(public)
        now = int(time.time())
        claims = {"iss": f"ACCT.SLUICE.{fp}", "sub": "ACCT.SLUICE", "iat": now, "exp": now + 60}
        good = {"LOGIN_NAME": "SLUICE", "AUTHENTICATOR": "SNOWFLAKE_JWT", "TOKEN": jwt.encode(claims, key, "RS256")}
        bad = {**good, "TOKEN": jwt.encode(claims, other, "RS256")}
        self.assertIsNone(adapter.check_login(users, good))
        self.assertEqual(adapter.check_login(users, bad), "390144")


class Server(unittest.TestCase):
    """The adapter in front of a real fakesnow, over HTTP."""

    @classmethod
    def setUpClass(cls):
        import uvicorn

        cls.port = free_port()
        users = {"SLUICE": {"password": "right"}}
        config = uvicorn.Config(adapter.Adapter(chunk_rows=2, users=users), port=cls.port, log_level="error")
        cls.server = uvicorn.Server(config)
        cls.thread = threading.Thread(target=cls.server.run, daemon=True)
        cls.thread.start()
        deadline = time.time() + 30
        while not cls.server.started:
            if time.time() > deadline:
                raise RuntimeError("the adapter did not start")
            time.sleep(0.05)
        cls.token = cls.login("right")["data"]["token"]
        for sql in ("create database if not exists ADB", "create schema if not exists ADB.S"):
            cls.sql(sql)

    @classmethod
    def tearDownClass(cls):
        cls.server.should_exit = True
        cls.thread.join(10)

    @classmethod
    def post(cls, path, body, token=None):
        req = urllib.request.Request(
            f"http://127.0.0.1:{cls.port}{path}",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )
        if token:
            req.add_header("Authorization", f'Snowflake Token="{token}"')
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.load(r)

    @classmethod
    def login(cls, password):
        # No SESSION_PARAMETERS, as the Rust connector sends it.
        return cls.post(
            "/session/v1/login-request?databaseName=ADB&schemaName=S",
            {"data": {"LOGIN_NAME": "sluice", "PASSWORD": password}},
        )

    @classmethod
    def sql(cls, text, bindings=None):
        body = {"sqlText": text}
        if bindings:
            body["bindings"] = bindings
        answer = cls.post("/queries/v1/query-request", body, cls.token)
        assert answer["success"], answer
        return answer["data"]

    def test_a_wrong_password_is_refused_with_snowflakes_code(self):
        answer = self.login("wrong")
        self.assertFalse(answer["success"])
        self.assertEqual(answer["code"], "390100")

    def test_selects_answer_json_rowsets_with_snowflake_encodings(self):
        self.sql(
            "create or replace table TYPES (id number(10,0), amt number(10,2), b boolean, d date,"
            " ts timestamp_ntz(9), v variant, s varchar)"
        )
        self.sql(
            "insert into TYPES select 1, 12.5, true, '1970-01-03', '1970-01-02 00:00:01.5',"
            " parse_json('{\"a\":1}'), 'x|y\"z'"
        )
        self.sql("insert into TYPES (id) values (2)")
        data = self.sql("select * from TYPES where id > ? order by id", {"1": {"type": "FIXED", "value": "0"}})
        self.assertEqual(data["queryResultFormat"], "json")
        self.assertNotIn("rowsetBase64", data)
        self.assertEqual(
            data["rowset"],
            [
                ["1", "12.50", "1", "2", "86401.500000000", '{"a":1}', 'x|y"z'],
                ["2", None, None, None, None, None, None],
            ],
        )
        self.assertEqual([c["type"] for c in data["rowtype"]][:5], ["fixed", "fixed", "boolean", "date", "timestamp_ntz"])

    def test_large_results_come_as_gzip_chunks_after_the_inline_rows(self):
        self.sql("create or replace table MANY (id number)")
        self.sql("insert into MANY select * from range(0, 7)")
        data = self.sql("select id from MANY order by id")
        self.assertEqual(data["rowset"], [["0"], ["1"]])
        self.assertEqual(data["total"], 7)
        self.assertEqual([c["rowCount"] for c in data["chunks"]], [2, 2, 1])
        rows = []
        for c in data["chunks"]:
            with urllib.request.urlopen(c["url"], timeout=30) as r:
                rows.extend(json.loads("[" + gzip.decompress(r.read()).decode() + "]"))
        self.assertEqual(rows, [["2"], ["3"], ["4"], ["5"], ["6"]])

    def test_a_delayed_query_waits_and_an_abort_is_recorded(self):
        self.post("/adapter/delay", {"match": "DELAYED_MARK", "seconds": 0.5})
        started = time.time()
        self.sql("select 1 as DELAYED_MARK")
        self.assertGreaterEqual(time.time() - started, 0.5)
        started = time.time()
        self.sql("select 1 as DELAYED_MARK")
        self.assertLess(time.time() - started, 0.5, "a delay applies once")
        self.post("/queries/v1/abort-request", {"requestId": "r-1"}, self.token)
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/adapter/statements", timeout=30) as r:
            self.assertIn({"abort": "r-1"}, json.load(r))

    def test_copy_into_a_stage_answers_the_result_a_test_set_and_is_recorded(self):
        self.post("/adapter/reset", {})
        files = [{"name": "x/part_0_0_0.csv.gz", "size": 10, "rows": 3}]
        self.post("/adapter/unload", {"files": files})
        data = self.sql("COPY INTO @STAGE/x/ FROM (SELECT 1) DETAILED_OUTPUT = TRUE")
        self.assertEqual([c["name"] for c in data["rowtype"]], ["FILE_NAME", "FILE_SIZE", "ROW_COUNT"])
        self.assertEqual(data["rowset"], [["x/part_0_0_0.csv.gz", "10", "3"]])
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/adapter/statements", timeout=30) as r:
            self.assertEqual(json.load(r)[-1]["sqlText"], "COPY INTO @STAGE/x/ FROM (SELECT 1) DETAILED_OUTPUT = TRUE")


if __name__ == "__main__":
    unittest.main()
