//! Property tests of the encoders and rolling parts: any table of strings written as CSV or
//! JSON lines reads back as the same cells, and parts never exceed `max_file_size` by more
//! than one row and concatenate to the whole.

use async_trait::async_trait;
use proptest::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use sluice_core::format::csv::CsvEncoder;
use sluice_core::format::jsonl::JsonLinesEncoder;
use sluice_core::format::Encoder;
use sluice_core::format::{Compression, CsvFormat, FileFormat, JsonFormat, QuoteStyle};
use sluice_core::part::PartWriter;
use sluice_core::ports::{ObjectMeta, ObjectStore, ObjectWriter};
use sluice_core::value::{Column, RowBatch};
use sluice_core::BoxError;
use sluice_testkit::{decompress, read_csv, Dialect};

type Table = Vec<Vec<Option<String>>>;

fn cell() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        1 => Just(None),
        1 => Just(Some(String::new())),
        1 => prop::sample::select(vec!["NULL", "\\N", "null", " ", "\"", "|", "\r\n", "a,b"]).prop_map(|s| Some(s.to_string())),
        6 => "[a-zA-Z0-9|\",;\t\r\n \\\\é😀]{0,12}".prop_map(Some),
    ]
}

fn table() -> impl Strategy<Value = Table> {
    (1usize..5).prop_flat_map(|w| prop::collection::vec(prop::collection::vec(cell(), w), 0..40))
}

fn csv_format() -> impl Strategy<Value = CsvFormat> {
    (
        prop::sample::select(vec![b'|', b',', b'\t', b';']),
        any::<bool>(),
        prop::sample::select(vec![QuoteStyle::Needed, QuoteStyle::Always]),
        prop::sample::select(vec![("", true), ("\\N", false), ("NULL", true), ("\\N", true)]),
        prop::sample::select(vec!["\n", "\r\n"]),
        prop::sample::select(vec![vec![], vec!["null".to_string(), "NULL".to_string()]]),
    )
        .prop_map(|(delimiter, header, quote_style, (null, empty_field_as_null), term, null_if)| CsvFormat {
            delimiter,
            header,
            quote: Some(b'"'),
            quote_style,
            null: null.to_string(),
            null_if,
            empty_field_as_null,
            record_terminator: term.to_string(),
            compression: Compression::None,
            max_file_size: u64::MAX,
        })
}

fn batch(t: &Table) -> RowBatch {
    let width = t.first().map_or(1, Vec::len);
    let mut b = RowBatch::new(width);
    for row in t {
        for c in row {
            match c {
                Some(s) => b.push_text(s.as_bytes()),
                None => b.push_null(),
            }
        }
    }
    b
}

fn columns(width: usize) -> Vec<Column> {
    (0..width).map(|i| Column { name: format!("c{i}|\"x\""), source_type: "TEXT".into() }).collect()
}

fn encode_all(enc: &mut dyn Encoder, cols: &[Column], t: &Table) -> Vec<u8> {
    let b = batch(t);
    let mut out = Vec::new();
    enc.begin_part(cols, &mut out);
    for r in 0..b.rows() {
        enc.encode_row(&b, r, &mut out).unwrap();
    }
    out
}

fn dialect(f: &CsvFormat) -> Dialect {
    Dialect::of(f)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A standard CSV reader with the same dialect reads back the same cells (NULL as its marker),
    /// and a quote-aware reader tells NULL from every string, the empty one included.
    #[test]
    fn csv_reads_back_the_same_cells(t in table(), f in csv_format()) {
        let width = t.first().map_or(1, Vec::len);
        let cols = columns(width);
        let bytes = encode_all(&mut CsvEncoder::new(f.clone()), &cols, &t);

        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .delimiter(f.delimiter)
            .quote(b'"')
            .terminator(if f.record_terminator == "\n" { csv::Terminator::Any(b'\n') } else { csv::Terminator::CRLF })
            .from_reader(bytes.as_slice());
        let records: Vec<csv::ByteRecord> = reader.byte_records().map(|r| r.unwrap()).collect();
        let skip = usize::from(f.header);
        // A one-column NULL written as an empty marker is a blank line, which this reader
        // skips (the quote-aware read below still sees it); leave that one case to it.
        let blank_null = width == 1 && f.null.is_empty() && t.iter().any(|r| r[0].is_none());
        if !blank_null {
        prop_assert_eq!(records.len(), t.len() + skip);
        if f.header {
            let names: Vec<&[u8]> = records[0].iter().collect();
            prop_assert_eq!(names, cols.iter().map(|c| c.name.as_bytes()).collect::<Vec<_>>());
        }
        for (rec, row) in records[skip..].iter().zip(&t) {
            let got: Vec<&[u8]> = rec.iter().collect();
            let want: Vec<&[u8]> = row.iter().map(|c| c.as_deref().unwrap_or(&f.null).as_bytes()).collect();
            prop_assert_eq!(got, want);
        }
        }

        let exact = read_csv(&bytes, &dialect(&f));
        let want: Vec<Vec<Option<Vec<u8>>>> = t.iter().map(|r| r.iter().map(|c| c.as_ref().map(|s| s.as_bytes().to_vec())).collect()).collect();
        prop_assert_eq!(&exact[skip..], &want[..]);
    }

    /// An integration reads back, from the stored (possibly compressed) part and its manifest
    /// entry, exactly the cells the export wrote: NULL as NULL, every string as itself.
    #[test]
    fn integrations_read_back_the_cells_the_export_wrote(
        t in table(),
        f in csv_format(),
        compression in prop::sample::select(vec![Compression::None, Compression::Gzip { level: 6 }, Compression::Zstd { level: 3 }]),
        jsonl in any::<bool>(),
    ) {
        use sluice_core::integrate::read::{read_part, PartReading};
        use std::io::Write;
        let width = t.first().map_or(1, Vec::len);
        let cols = columns(width);
        let (format, plain) = if jsonl {
            let format = FileFormat::JsonLines(JsonFormat { compression, max_file_size: u64::MAX });
            (format, encode_all(&mut JsonLinesEncoder::new(&cols), &cols, &t))
        } else {
            let format = FileFormat::Csv(CsvFormat { compression, ..f.clone() });
            (format, encode_all(&mut CsvEncoder::new(f.clone()), &cols, &t))
        };
        let stored = match compression {
            Compression::None => plain,
            Compression::Gzip { .. } => {
                let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                e.write_all(&plain).unwrap();
                e.finish().unwrap()
            }
            Compression::Zstd { .. } => zstd::encode_all(plain.as_slice(), 3).unwrap(),
        };
        let part = sluice_core::manifest::PartInfo {
            key: "e/t/r/part-00000".into(),
            rows: t.len() as u64,
            bytes: stored.len() as u64,
            sha256: Some(hex::encode(Sha256::digest(&stored))),
        };
        let reading = PartReading::from_manifest(&format.describe()).unwrap();
        let mut got = Vec::new();
        read_part(&part, &cols, &reading, stored.as_slice(), |_, row| {
            got.push(row);
            true
        })
        .unwrap();
        let want: Vec<Vec<serde_json::Value>> = t
            .iter()
            .map(|r| r.iter().map(|c| c.clone().map_or(serde_json::Value::Null, serde_json::Value::String)).collect())
            .collect();
        prop_assert_eq!(got, want);
    }

    /// Every JSON line parses to an object with the row's values; NULL is null.
    #[test]
    fn json_lines_read_back_the_same_values(t in table()) {
        let width = t.first().map_or(1, Vec::len);
        let cols = columns(width);
        let bytes = encode_all(&mut JsonLinesEncoder::new(&cols), &cols, &t);
        let text = String::from_utf8(bytes).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        prop_assert_eq!(lines.len(), t.len());
        for (line, row) in lines.iter().zip(&t) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            for (c, cell) in cols.iter().zip(row) {
                let want = cell.as_ref().map_or(serde_json::Value::Null, |s| serde_json::Value::String(s.clone()));
                prop_assert_eq!(&v[&c.name], &want);
            }
        }
    }

    /// Parts stay within max_file_size unless one row alone is larger, their checksums and sizes
    /// match what was stored, and decompressed and concatenated (headers dropped) they are the
    /// whole table.
    #[test]
    fn parts_respect_max_file_size_and_concatenate_to_the_whole(
        t in table(),
        max in 40u64..3000,
        compression in prop::sample::select(vec![Compression::None, Compression::Gzip { level: 6 }, Compression::Zstd { level: 3 }]),
        jsonl in any::<bool>(),
    ) {
        let width = t.first().map_or(1, Vec::len);
        let cols = columns(width);
        let format = if jsonl {
            FileFormat::JsonLines(JsonFormat { compression, max_file_size: max })
        } else {
            FileFormat::Csv(CsvFormat { compression, max_file_size: max, ..CsvFormat::default() })
        };
        let store = MemoryStore::default();
        let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let parts = rt.block_on(async {
            let mut w = PartWriter::new(&store, sluice_core::layout::RunFolder::at("e/t/run"), &format, cols.clone());
            // Several batches, to cross batch boundaries too. The bytes a progress line shows
            // never go back, compressed or not.
            let mut shown = 0;
            for chunk in t.chunks(7) {
                w.write_batch(&batch(&chunk.to_vec())).await.unwrap();
                assert!(w.bytes() >= shown, "progress bytes went from {shown} back to {}", w.bytes());
                shown = w.bytes();
            }
            w.finish().await.unwrap()
        });
        prop_assert_eq!(parts.iter().map(|p| p.rows).sum::<u64>(), t.len() as u64);

        let mut whole_body = Vec::new();
        let mut header = Vec::new();
        let mut enc: Box<dyn Encoder> = format.encoder(&cols);
        enc.begin_part(&cols, &mut header);
        let b = batch(&t);
        for r in 0..b.rows() {
            enc.encode_row(&b, r, &mut whole_body).unwrap();
        }

        let mut joined = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let expected_name = format!("part-{:05}.{}", i, format.extension());
            prop_assert!(p.key.ends_with(&expected_name), "{} is not {}", p.key, expected_name);
            let stored = store.objects.lock().unwrap().get(&p.key).cloned().unwrap();
            prop_assert_eq!(stored.len() as u64, p.bytes);
            prop_assert_eq!(Some(hex::encode(Sha256::digest(&stored))), p.sha256.clone());
            prop_assert!(p.bytes <= max || p.rows == 1, "part {} has {} bytes > {} with {} rows", i, p.bytes, max, p.rows);
            let plain = decompress(&p.key, &stored);
            if p.key.ends_with(".gz") {
                // One gzip member (blocks compressed apart are one stream), as every reader
                // expects: a single-member decoder reads it whole.
                let mut single = Vec::new();
                std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&stored[..]), &mut single).unwrap();
                prop_assert_eq!(&single, &plain);
            }
            prop_assert!(plain.starts_with(&header));
            joined.extend_from_slice(&plain[header.len()..]);
        }
        prop_assert_eq!(joined, whole_body);
    }
}

/// An in-memory object store: the port's contract in a few lines.
#[derive(Default)]
struct MemoryStore {
    objects: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
}

struct MemoryWriter {
    objects: Arc<Mutex<BTreeMap<String, Vec<u8>>>>,
    key: String,
    buf: Vec<u8>,
}

#[async_trait]
impl ObjectWriter for MemoryWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), BoxError> {
        self.buf.extend_from_slice(chunk);
        Ok(())
    }
    async fn finish(self: Box<Self>) -> Result<u64, BoxError> {
        let n = self.buf.len() as u64;
        self.objects.lock().unwrap().insert(self.key, self.buf);
        Ok(n)
    }
    async fn abort(self: Box<Self>) -> Result<(), BoxError> {
        Ok(())
    }
}

#[async_trait]
impl ObjectStore for MemoryStore {
    fn location(&self) -> String {
        "memory".into()
    }
    async fn create(&self, key: &str, _meta: &ObjectMeta) -> Result<Box<dyn ObjectWriter>, BoxError> {
        Ok(Box::new(MemoryWriter { objects: self.objects.clone(), key: key.to_string(), buf: Vec::new() }))
    }
    async fn put(&self, key: &str, bytes: Vec<u8>, _meta: &ObjectMeta) -> Result<(), BoxError> {
        self.objects.lock().unwrap().insert(key.to_string(), bytes);
        Ok(())
    }
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError> {
        Ok(self.objects.lock().unwrap().get(key).cloned())
    }
    async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BoxError> {
        Ok(self.get(key).await?.map(|b| (b, "tag".to_string())))
    }
    async fn read(&self, key: &str) -> Result<Option<sluice_core::ports::ByteStream>, BoxError> {
        use futures::StreamExt;
        Ok(self.get(key).await?.map(|b| futures::stream::iter([Ok(b)]).boxed()))
    }
    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        self.objects.lock().unwrap().remove(key);
        Ok(())
    }
    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BoxError> {
        let mut o = self.objects.lock().unwrap();
        let keys: Vec<String> = o.keys().filter(|k| k.starts_with(prefix)).cloned().collect();
        for k in &keys {
            o.remove(k);
        }
        Ok(keys.len() as u64)
    }
    async fn list(&self, prefix: &str) -> Result<Vec<String>, BoxError> {
        Ok(self.objects.lock().unwrap().keys().filter(|k| k.starts_with(prefix)).cloned().collect())
    }
}
