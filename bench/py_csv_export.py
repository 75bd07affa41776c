#!/usr/bin/env python3
"""py_csv_export.py DB_PATH OUT_PATH [TABLE]

Reference exporter for the whole-pipeline benchmark (bench/export_bench.py):
the plain standard-library way to dump a SQLite table to CSV.

Iterates a sqlite3 cursor over `SELECT * FROM <TABLE>` (default: contacts)
and writes it with csv.writer: delimiter '|', a header row, QUOTE_MINIMAL,
'\\n' line endings (like the sqlite3 CLI), NULL written as an empty field.
"""
import csv
import sqlite3
import sys


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    db_path, out_path = sys.argv[1], sys.argv[2]
    table = sys.argv[3] if len(sys.argv) == 4 else "contacts"

    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        cur = con.execute(f'SELECT * FROM "{table}"')
        with open(out_path, "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter="|", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
            w.writerow([d[0] for d in cur.description])
            w.writerows(cur)  # iterates the cursor; None -> '' in the csv module
    finally:
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
