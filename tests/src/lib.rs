//! Sluice's test harness, shared by every crate's tests: a CSV reader that knows which fields
//! were quoted (so NULL and the empty string can be told apart), seeded sample databases, and
//! helpers that read back what committed runs wrote.

pub mod alerts;
pub mod api;
pub mod browser;
pub mod catalog;
pub mod events;
pub mod fakesnow;
pub mod history;
pub mod lambda;
pub mod ledger;
pub mod memory;
pub mod moto;
pub mod object_store;
pub mod runtime;
pub mod scheduler;
pub mod serve;
pub mod source;
pub mod stack;
pub mod store;
pub mod verify;

use rusqlite::{params, Connection};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The dialect a quote-aware read needs.
#[derive(Debug, Clone)]
pub struct Dialect {
    pub delimiter: u8,
    pub quote: Option<u8>,
    pub terminator: Vec<u8>,
    /// Unquoted fields equal to one of these are NULL.
    pub null_markers: Vec<Vec<u8>>,
    /// An unquoted empty field is NULL.
    pub empty_as_null: bool,
}

impl Dialect {
    /// The dialect a part written with `format` is read in: the format's own options, read here
    /// by an independent parser (the oracle does not share the product's reader).
    pub fn of(format: &sluice_core::format::CsvFormat) -> Dialect {
        let mut null_markers: Vec<Vec<u8>> = format.null_if.iter().map(|s| s.as_bytes().to_vec()).collect();
        if !format.null.is_empty() {
            null_markers.push(format.null.as_bytes().to_vec());
        }
        Dialect {
            delimiter: format.delimiter,
            quote: format.quote,
            terminator: format.record_terminator.as_bytes().to_vec(),
            null_markers,
            empty_as_null: format.empty_field_as_null,
        }
    }

    /// The reference format's dialect (a config without `format` keys).
    pub fn reference() -> Dialect {
        Dialect::of(&sluice_core::format::CsvFormat::default())
    }
}

/// Reads CSV the way a loader such as Snowflake's does: a field is NULL only when unquoted and
/// equal to a NULL marker (or empty, with `empty_as_null`). Panics on malformed input: it is a
/// test oracle, and a panic is the test failing.
pub fn read_csv(bytes: &[u8], d: &Dialect) -> Vec<Vec<Option<Vec<u8>>>> {
    let mut records = Vec::new();
    let mut record = Vec::new();
    let mut i = 0;
    if bytes.is_empty() {
        return records;
    }
    loop {
        // One field.
        let mut field = Vec::new();
        let quoted = d.quote.is_some_and(|q| bytes.get(i) == Some(&q));
        if quoted {
            let q = d.quote.unwrap();
            i += 1;
            loop {
                match bytes.get(i) {
                    None => panic!("unterminated quoted field at byte {i}"),
                    Some(&b) if b == q => {
                        if bytes.get(i + 1) == Some(&q) {
                            field.push(q);
                            i += 2;
                        } else {
                            i += 1;
                            break;
                        }
                    }
                    Some(&b) => {
                        field.push(b);
                        i += 1;
                    }
                }
            }
        } else {
            while i < bytes.len() && bytes[i] != d.delimiter && !bytes[i..].starts_with(&d.terminator) {
                field.push(bytes[i]);
                i += 1;
            }
        }
        let is_null = !quoted && ((field.is_empty() && d.empty_as_null) || d.null_markers.contains(&field));
        record.push(if is_null { None } else { Some(field) });
        if i >= bytes.len() {
            records.push(record);
            return records;
        }
        if bytes[i] == d.delimiter {
            i += 1;
            continue;
        }
        assert!(bytes[i..].starts_with(&d.terminator), "garbage after field at byte {i}");
        i += d.terminator.len();
        records.push(std::mem::take(&mut record));
        if i >= bytes.len() {
            return records;
        }
    }
}

/// Decompresses a part by its file name's suffix.
pub fn decompress(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    if name.ends_with(".gz") {
        flate2::read::MultiGzDecoder::new(bytes).read_to_end(&mut out).expect("valid gzip");
    } else if name.ends_with(".zst") {
        out = zstd::decode_all(bytes).expect("valid zstd");
    } else {
        out = bytes.to_vec();
    }
    out
}

/// A committed (manifest-listed) part: its manifest, path and decompressed bytes.
pub struct CommittedPart {
    pub manifest: serde_json::Value,
    pub path: PathBuf,
    pub bytes: Vec<u8>,
}

/// Every file under `root`, depth first (temporary files included).
fn files_under(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files.push(p);
            }
        }
    }
    files
}

/// Every part listed by a manifest under `root`, in manifest then part order. Parts not listed
/// by any manifest are ignored, as consumers ignore them.
pub fn committed_parts(root: &Path) -> Vec<CommittedPart> {
    let mut manifests: Vec<PathBuf> =
        files_under(root).into_iter().filter(|p| p.file_name().is_some_and(|n| n == "manifest.json")).collect();
    manifests.sort();
    let mut parts = Vec::new();
    for m in manifests {
        let manifest: serde_json::Value = serde_json::from_slice(&std::fs::read(&m).unwrap()).unwrap();
        for part in manifest["parts"].as_array().unwrap() {
            let key = part["key"].as_str().unwrap();
            let path = root.join(key);
            let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("manifest {} lists {key}: {e}", m.display()));
            assert_eq!(raw.len() as u64, part["bytes"].as_u64().unwrap(), "size of {key}");
            parts.push(CommittedPart { manifest: manifest.clone(), bytes: decompress(key, &raw), path });
        }
    }
    parts
}

/// The data rows (header skipped) of every committed CSV part under `root`, reference dialect.
pub fn committed_rows(root: &Path) -> Vec<Vec<Option<String>>> {
    let d = Dialect::reference();
    let mut rows = Vec::new();
    for part in committed_parts(root) {
        let header = part.manifest["format"]["header"].as_bool().unwrap_or(false);
        for (i, r) in read_csv(&part.bytes, &d).into_iter().enumerate() {
            if header && i == 0 {
                continue;
            }
            rows.push(r.into_iter().map(|c| c.map(|b| String::from_utf8(b).unwrap())).collect());
        }
    }
    rows
}

/// Files under `root` that are neither manifests, parts they list, nor committed check states: what a
/// failed run must not leave behind (temporary files included).
pub fn stray_files(root: &Path) -> Vec<PathBuf> {
    let listed: Vec<PathBuf> = committed_parts(root).into_iter().map(|p| p.path).collect();
    // A check run's state sits beside its manifest; without one it is a failed run's leftover.
    let state = |p: &Path| {
        p.file_name().is_some_and(|n| n == sluice_core::layout::STATE_FILE)
            && p.with_file_name(sluice_core::layout::MANIFEST_FILE).exists()
    };
    files_under(root)
        .into_iter()
        .filter(|p| !(p.file_name().is_some_and(|n| n == "manifest.json") || listed.contains(p) || state(p)))
        .collect()
}

/// A contacts table: `id`, `email`, `name` (with delimiters, quotes and NULLs), `version`,
/// `updated_at` (text, `YYYY-MM-DD HH:MM:SS.fff`).
pub fn create_contacts(path: &Path) -> Connection {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         CREATE TABLE IF NOT EXISTS contacts (id INTEGER PRIMARY KEY, email TEXT NOT NULL, name TEXT,
             version INTEGER NOT NULL, updated_at TEXT);",
    )
    .unwrap();
    conn
}

/// Inserts `n` contacts with ids from `first`, all stamped `updated_at`.
pub fn insert_contacts(conn: &Connection, first: i64, n: i64, updated_at: &str) {
    let tx = conn.unchecked_transaction().unwrap();
    {
        let mut stmt = tx.prepare("INSERT INTO contacts VALUES (?1, ?2, ?3, 1, ?4)").unwrap();
        for id in first..first + n {
            let name: Option<String> = match id % 5 {
                0 => None,
                1 => Some(format!("Pipe|{id}")),
                2 => Some(format!("Say \"{id}\"")),
                3 => Some(String::new()),
                _ => Some(format!("Plain {id}")),
            };
            stmt.execute(params![id, format!("user{id}@example.com"), name, updated_at]).unwrap();
        }
    }
    tx.commit().unwrap();
}

/// A config file for one export of the contacts table to `out/`, with `incremental` inline.
pub fn contacts_config(dir: &Path, incremental: &str, format: &str) -> PathBuf {
    let path = dir.join("sluice.toml");
    std::fs::write(
        &path,
        format!(
            "version = 1\nhistory = \"history.db\"\n\n[sources.db]\nkind = \"sqlite\"\npath = \"source.db\"\n\n\
             [[export]]\nname = \"contacts\"\nsource = \"db\"\ndestination = \"out\"\nformat = {format}\n\n\
             [[export.table]]\nname = \"contacts\"\nincremental = {incremental}\n"
        ),
    )
    .unwrap();
    path
}

/// The id of a process that has exited: a lease it holds on this machine is taken over at once,
/// as a killed run's is.
pub fn dead_pid() -> u32 {
    let mut child = std::process::Command::new("true").spawn().expect("spawning true");
    let pid = child.id();
    child.wait().expect("waiting for true");
    pid
}

/// A run as `sluice run` makes it on this machine: this process and host hold the lease, for a
/// minute between renewals, with no deadline.
pub fn run_options() -> sluice_core::run::RunOptions {
    sluice_core::run::RunOptions {
        full_refresh: false,
        tables: None,
        host: "test-host".into(),
        pid: std::process::id(),
        lease_ttl: std::time::Duration::from_secs(60),
        stop_by: None,
        interrupt: None,
        backfill: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_empty_is_not_null_but_bare_empty_is() {
        let d = Dialect {
            delimiter: b'|',
            quote: Some(b'"'),
            terminator: b"\n".to_vec(),
            null_markers: vec![b"\\N".to_vec()],
            empty_as_null: true,
        };
        let rows = read_csv(b"|\"\"|\\N|\"\\N\"|\"a|\"\"b\"\n", &d);
        assert_eq!(rows, vec![vec![None, Some(vec![]), None, Some(b"\\N".to_vec()), Some(b"a|\"b".to_vec())]]);
    }
}
