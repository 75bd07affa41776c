//! Snowflake result decoding on one core: a JSON result chunk of 100k mixed-type rows, in the
//! exact form Snowflake (and the test adapter) serves chunks (row arrays separated by commas,
//! every value a string, timestamps as epoch seconds with 9 fraction digits), parsed by the
//! connector, rendered into row batches and encoded as reference-format CSV. Throughput is rows;
//! the target is over 1M rows/s.

use std::sync::Arc;

use bytes_free::chunk;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice_core::format::csv::CsvEncoder;
use sluice_core::format::CsvFormat;
use sluice_core::format::Encoder;
use sluice_core::value::{BatchPool, RowBatch};
use sluice_snowflake::render::render_table;
use snowflake_connector_rs::bench_support::{column_type, make_schema, parse_remote_chunk_result_table};

const ROWS: usize = 100_000;
const BATCH_ROWS: usize = 4096;

mod bytes_free {
    /// The chunk body: `["1","user1@example.com",...],[...]`.
    pub fn chunk(rows: usize) -> Vec<u8> {
        let mut out = String::with_capacity(rows * 200);
        let names = ["Ada Lovelace", "Grace \\\"Amazing\\\" Hopper", "Linus | Torvalds", "Margaret Hamilton"];
        for i in 0..rows {
            if i > 0 {
                out.push(',');
            }
            let score = if i % 11 == 0 { "null".to_string() } else { format!("\"{}.{:02}\"", i % 1000, i % 100) };
            let active = if i % 3 == 0 { "\"0\"" } else { "\"1\"" };
            let created = 19_000 + (i % 1000);
            let updated = 1_700_000_000 + i as u64;
            let payload = if i % 7 == 0 {
                "null".to_string()
            } else {
                format!("\"{{\\n  \\\"plan\\\": \\\"pro\\\",\\n  \\\"seats\\\": {}\\n}}\"", i % 50)
            };
            out.push_str(&format!(
                "[\"{i}\",\"user{i}@example.com\",\"{}\",{score},{active},\"{created}\",\"{updated}.{:09}\",{payload}]",
                names[i % 4],
                (i * 7919) % 1_000_000_000,
            ));
        }
        out.into_bytes()
    }
}

fn bench(c: &mut Criterion) {
    let schema = make_schema(vec![
        ("ID".into(), column_type("fixed", None, Some(38), Some(0)), false),
        ("EMAIL".into(), column_type("text", Some(256), None, None), true),
        ("NAME".into(), column_type("text", Some(256), None, None), true),
        ("SCORE".into(), column_type("fixed", None, Some(10), Some(2)), true),
        ("ACTIVE".into(), column_type("boolean", None, None, None), true),
        ("CREATED".into(), column_type("date", None, None, None), true),
        ("UPDATED_AT".into(), column_type("timestamp_ntz", None, None, Some(9)), true),
        ("PAYLOAD".into(), column_type("variant", None, None, None), true),
    ]);
    let body = bytes::Bytes::from(chunk(ROWS));
    let pool = BatchPool::new(4);
    let mut csv = CsvEncoder::new(CsvFormat::default());
    let mut out = Vec::with_capacity(ROWS * 160);

    let mut run = |out: &mut Vec<u8>| {
        out.clear();
        let table = parse_remote_chunk_result_table(schema.clone(), Arc::from("bench"), body.clone()).unwrap();
        let mut encode = |b: &RowBatch, out: &mut Vec<u8>| {
            for r in 0..b.rows() {
                csv.encode_row(b, r, out).unwrap();
            }
        };
        let mut full = Vec::new();
        let rest = render_table(&table, pool.batch(8, BATCH_ROWS, 1 << 18), BATCH_ROWS, |b| {
            full.push(b);
            Some(pool.batch(8, BATCH_ROWS, 1 << 18))
        })
        .unwrap()
        .unwrap();
        for b in full.iter().chain(std::iter::once(&rest)) {
            encode(b, out);
        }
        table.row_count()
    };
    assert_eq!(run(&mut out), ROWS);

    let mut group = c.benchmark_group("snowflake_decode");
    group.throughput(Throughput::Elements(ROWS as u64));
    group.sample_size(20);
    group.bench_function("json_chunk_100k_rows_to_csv", |b| b.iter(|| run(&mut out)));
    // The parts, to see where the time goes: the connector's parse alone, and parse + render.
    group.bench_function("parse_only", |b| {
        b.iter(|| {
            parse_remote_chunk_result_table(schema.clone(), Arc::from("bench"), body.clone()).unwrap().row_count()
        })
    });
    group.bench_function("parse_and_render", |b| {
        b.iter(|| {
            let table = parse_remote_chunk_result_table(schema.clone(), Arc::from("bench"), body.clone()).unwrap();
            let mut n = 0;
            let rest = render_table(&table, pool.batch(8, BATCH_ROWS, 1 << 18), BATCH_ROWS, |b| {
                n += b.rows();
                Some(pool.batch(8, BATCH_ROWS, 1 << 18))
            })
            .unwrap()
            .unwrap();
            n + rest.rows()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
