//! Compressed parts are written on every core (gzip as independently compressed blocks of one
//! member, as pigz does; zstd by its own worker threads, one frame). Each part must still be one
//! valid stream for every reader: `gzip -t` and `zstd -t`, Python's gzip module, and DuckDB
//! (the fakesnow venv's), each reading every row back.

use std::path::{Path, PathBuf};
use std::process::Command;

use sluice_testkit::moto::repo_root;
use sluice_testkit::{contacts_config, create_contacts, insert_contacts};

const BIN: &str = env!("CARGO_BIN_EXE_sluice");
const ROWS: i64 = 300_000;

fn parts(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(ext) {
                found.push(p);
            }
        }
    }
    found
}

fn python(code: &str) -> String {
    let py = repo_root().join(".tools/venv/bin/python");
    let out = Command::new(py).arg("-c").arg(code).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn parts_compressed_on_every_core_are_one_valid_stream_for_every_reader() {
    for (compression, ext, tool) in [("gzip", ".csv.gz", "gzip"), ("zstd", ".csv.zst", "zstd")] {
        let dir = tempfile::tempdir().unwrap();
        insert_contacts(&create_contacts(&dir.path().join("source.db")), 1, ROWS, "2025-06-01 00:00:00");
        let config =
            contacts_config(dir.path(), "{ strategy = \"full\" }", &format!("{{ compression = \"{compression}\" }}"));
        let out =
            Command::new(BIN).arg("--config").arg(&config).arg("run").env_remove("SLUICE_HISTORY").output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let found = parts(&dir.path().join("out"), ext);
        assert_eq!(found.len(), 1, "{found:?}");
        let part = &found[0];
        // Many blocks: the part is well over one compression block (1 MiB) of CSV.
        let t = Command::new(tool).arg("-t").arg(part).output().unwrap();
        assert!(t.status.success(), "{tool} -t: {}", String::from_utf8_lossy(&t.stderr));
        let p = part.display();
        if compression == "gzip" {
            let lines = python(&format!("import gzip; print(sum(1 for _ in gzip.open('{p}', 'rt')))"));
            assert_eq!(lines, (ROWS + 1).to_string(), "Python's gzip reads every line, the header's too");
        }
        let rows = python(&format!(
            "import duckdb; print(duckdb.sql(\"select count(*) from read_csv('{p}', header=true)\").fetchall()[0][0])"
        ));
        assert_eq!(rows, ROWS.to_string(), "DuckDB reads every row of the {compression} part");
    }
}
