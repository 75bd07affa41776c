//! Encoder throughput on one core: 100k contacts-like rows (ints, text with some delimiters and
//! quotes, NULLs, floats, timestamps) encoded from a row batch into memory. Throughput is bytes
//! of output; the target for CSV is over 500 MB/s.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use std::hint::black_box;

use sluice_core::format::csv::CsvEncoder;
use sluice_core::format::jsonl::JsonLinesEncoder;
use sluice_core::format::CsvFormat;
use sluice_core::format::Encoder;
use sluice_core::value::{Column, RowBatch};

const ROWS: usize = 100_000;

fn batch() -> (Vec<Column>, RowBatch) {
    let names = ["id", "email", "first_name", "last_name", "company", "score", "created_at", "updated_at"];
    let cols = names.iter().map(|n| Column { name: n.to_string(), source_type: "TEXT".into() }).collect();
    let mut b = RowBatch::with_capacity(names.len(), ROWS, ROWS * 96);
    let first = ["Ada", "Grace", "Linus", "Margaret"];
    let last = ["Lovelace", "Hopper", "Torvalds", "Hamilton"];
    for i in 0..ROWS as i64 {
        b.push_int(i);
        b.push_text(format!("user{i}@example.com").as_bytes());
        b.push_text(first[i as usize % 4].as_bytes());
        if i % 13 == 0 {
            b.push_null()
        } else {
            b.push_text(last[i as usize % 4].as_bytes())
        }
        let company = match i % 23 {
            0 => String::new(),
            _ if i % 17 == 0 => format!("Pipe | Co {i}"),
            _ if i % 19 == 0 => format!("\"Quoted\" {i}"),
            _ => format!("Company {}", i % 1000),
        };
        b.push_text(company.as_bytes());
        if i % 11 == 0 {
            b.push_null()
        } else {
            b.push_float((i * 37 % 10_000) as f64 / 100.0)
        }
        b.push_text(b"2023-11-14 22:13:20");
        b.push_text(b"2023-11-15 08:01:07");
    }
    (cols, b)
}

fn encode(enc: &mut dyn Encoder, b: &RowBatch, out: &mut Vec<u8>) {
    out.clear();
    for r in 0..b.rows() {
        enc.encode_row(b, r, out).unwrap();
    }
}

fn bench(c: &mut Criterion) {
    let (cols, b) = batch();
    let mut out = Vec::with_capacity(ROWS * 128);

    let mut csv = CsvEncoder::new(CsvFormat::default());
    encode(&mut csv, &b, &mut out);
    let mut group = c.benchmark_group("encoder");
    group.throughput(Throughput::Bytes(out.len() as u64));
    group.bench_function("csv_100k_rows", |bench| bench.iter(|| encode(&mut csv, black_box(&b), &mut out)));

    let mut jsonl = JsonLinesEncoder::new(&cols);
    encode(&mut jsonl, &b, &mut out);
    group.throughput(Throughput::Bytes(out.len() as u64));
    group.bench_function("jsonl_100k_rows", |bench| bench.iter(|| encode(&mut jsonl, black_box(&b), &mut out)));
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
