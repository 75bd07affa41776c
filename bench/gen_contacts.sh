#!/usr/bin/env bash
# gen_contacts.sh ROWS DB_PATH
#
# Builds a deterministic SQLite database for the export benchmark with the
# sqlite3 CLI, using one recursive CTE inside one transaction (no per-row
# client loop). Every value is derived arithmetically from the row number i,
# so the same ROWS always gives byte-identical table contents.
#
# Table:
#   contacts (id INTEGER PRIMARY KEY, email TEXT, first_name TEXT,
#             last_name TEXT, company TEXT, score REAL,
#             created_at TEXT NOT NULL, updated_at TEXT)
#
# Data shape (i = 1..ROWS):
#   email       'user<i>@example.com'
#   first_name  from a 10-name list, last_name from a 12-name list
#               (NULL every 13th row)
#   company     from an 8-name list; every 17th row contains '|',
#               every 19th row contains '"', every 23rd row is '' (empty),
#               rows divisible by 17*19 contain both
#   score       (i*37 % 10000)/100.0, NULL every 11th row
#   created_at  datetime(1700000000 + i*7, 'unixepoch')  ('YYYY-MM-DD HH:MM:SS')
#   updated_at  created_at + (i*13 % 86400) seconds (always >= created_at)
# No value contains a newline, so a CSV export has exactly ROWS+1 lines.
#
# If DB_PATH already exists with exactly ROWS rows in contacts, nothing is done.
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 ROWS DB_PATH" >&2
    exit 2
fi
ROWS="$1"
DB="$2"
case "$ROWS" in
    ''|*[!0-9]*) echo "ROWS must be a non-negative integer, got '$ROWS'" >&2; exit 2 ;;
esac
command -v sqlite3 >/dev/null || { echo "sqlite3 CLI not found (apt-get install sqlite3)" >&2; exit 1; }

if [ -f "$DB" ]; then
    have="$(sqlite3 "$DB" "SELECT count(*) FROM contacts" 2>/dev/null || echo x)"
    if [ "$have" = "$ROWS" ]; then
        echo "gen_contacts: $DB already has $ROWS rows, skipping" >&2
        exit 0
    fi
    echo "gen_contacts: $DB has '$have' rows, want $ROWS: regenerating" >&2
fi

mkdir -p "$(dirname "$DB")"
tmp="$DB.tmp.$$"
rm -f "$tmp"
trap 'rm -f "$tmp"' EXIT

start=$(date +%s.%N)
sqlite3 "$tmp" >/dev/null <<SQL
PRAGMA journal_mode=OFF;
PRAGMA synchronous=OFF;
PRAGMA page_size=8192;
CREATE TABLE contacts (
    id INTEGER PRIMARY KEY,
    email TEXT,
    first_name TEXT,
    last_name TEXT,
    company TEXT,
    score REAL,
    created_at TEXT NOT NULL,
    updated_at TEXT
);
BEGIN;
WITH RECURSIVE seq(i) AS (
    SELECT 1 WHERE $ROWS > 0
    UNION ALL
    SELECT i + 1 FROM seq WHERE i < $ROWS
)
INSERT INTO contacts (id, email, first_name, last_name, company, score, created_at, updated_at)
SELECT
    i,
    'user' || i || '@example.com',
    CASE i % 10
        WHEN 0 THEN 'Alice' WHEN 1 THEN 'Bob' WHEN 2 THEN 'Carol' WHEN 3 THEN 'Dave'
        WHEN 4 THEN 'Eve' WHEN 5 THEN 'Frank' WHEN 6 THEN 'Grace' WHEN 7 THEN 'Heidi'
        WHEN 8 THEN 'Ivan' ELSE 'Judy' END,
    CASE WHEN i % 13 = 0 THEN NULL ELSE
        CASE (i * 7) % 12
            WHEN 0 THEN 'Smith' WHEN 1 THEN 'Johnson' WHEN 2 THEN 'Williams' WHEN 3 THEN 'Brown'
            WHEN 4 THEN 'Jones' WHEN 5 THEN 'Garcia' WHEN 6 THEN 'Miller' WHEN 7 THEN 'Davis'
            WHEN 8 THEN 'Rodriguez' WHEN 9 THEN 'Martinez' WHEN 10 THEN 'Hernandez' ELSE 'Lopez' END
    END,
    CASE
        WHEN i % 23 = 0 THEN ''
        WHEN i % 323 = 0 THEN 'Pipe|And "Quote" Ltd'
        WHEN i % 17 = 0 THEN 'Acme|Widgets ' || (i % 100)
        WHEN i % 19 = 0 THEN 'The "Best" Co ' || (i % 100)
        ELSE CASE (i * 3) % 8
            WHEN 0 THEN 'Initech' WHEN 1 THEN 'Globex Corporation' WHEN 2 THEN 'Umbrella'
            WHEN 3 THEN 'Hooli' WHEN 4 THEN 'Stark Industries' WHEN 5 THEN 'Wayne Enterprises'
            WHEN 6 THEN 'Soylent, Inc.' ELSE 'Vandelay Industries' END
    END,
    CASE WHEN i % 11 = 0 THEN NULL ELSE ((i * 37) % 10000) / 100.0 END,
    datetime(1700000000 + i * 7, 'unixepoch'),
    datetime(1700000000 + i * 7 + (i * 13) % 86400, 'unixepoch')
FROM seq;
COMMIT;
SQL
mv "$tmp" "$DB"
trap - EXIT
end=$(date +%s.%N)
echo "gen_contacts: wrote $ROWS rows to $DB in $(awk "BEGIN{printf \"%.1f\", $end-$start}") s" >&2
