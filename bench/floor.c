/*
 * The read floor: the least work any exporter of a SQLite table must do. Steps through
 * `SELECT * FROM <table>` with the same bundled SQLite the sluice binary embeds, touching every
 * column of every row (its type, then its integer, its double, or its text's bytes), and writes
 * nothing.
 * bench/floor.sh builds it from the SQLite source of the libsqlite3-sys crate that Cargo.lock
 * pins, so anyone can rerun it; export_bench.py times it beside the exporters.
 *
 *   floor DB TABLE   ->  prints "<rows> rows, <bytes> bytes of values" on stdout
 */
#include <stdio.h>
#include <stdlib.h>
#include "sqlite3.h"

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: floor DB TABLE\n");
        return 2;
    }
    sqlite3 *db;
    if (sqlite3_open_v2(argv[1], &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "floor: cannot open %s: %s\n", argv[1], sqlite3_errmsg(db));
        return 1;
    }
    char *sql = sqlite3_mprintf("SELECT * FROM \"%w\"", argv[2]);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "floor: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    int cols = sqlite3_column_count(st);
    unsigned long long rows = 0, bytes = 0, sum = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < cols; c++) {
            switch (sqlite3_column_type(st, c)) {
            case SQLITE_INTEGER:
                sum += (unsigned long long)sqlite3_column_int64(st, c);
                bytes += 8;
                break;
            case SQLITE_FLOAT:
                /* The value, not its text: an exporter formats it its own way. */
                sum += (unsigned long long)sqlite3_column_double(st, c);
                bytes += 8;
                break;
            case SQLITE_NULL:
                break;
            default: {
                const unsigned char *t = sqlite3_column_text(st, c);
                int n = sqlite3_column_bytes(st, c);
                /* Touch the bytes, as an encoder copying them would. */
                if (n > 0) sum += t[0] + t[n - 1];
                bytes += (unsigned long long)n;
            }
            }
        }
        rows++;
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "floor: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    sqlite3_finalize(st);
    sqlite3_free(sql);
    sqlite3_close(db);
    printf("%llu rows, %llu bytes of values (checksum %llu)\n", rows, bytes, sum);
    return 0;
}
