//! `sluice-fake-api`: the tests' fake destination API as a process, for benchmarks.
//!
//!   sluice-fake-api serve [--port N]            prints its URL, serves until stdin closes;
//!                                               GET /_stats gives counts and arrival times
//!   sluice-fake-api blast URL BODY_FILE N C     sends BODY_FILE N times, C at once, and
//!                                               prints {"seconds": …, "requests": N}: the
//!                                               server's ceiling for a client doing nothing else

use std::io::Read;
use std::time::Instant;

use sluice_testkit::api::{FakeApi, Shape};

fn usage() -> ! {
    eprintln!("usage: sluice-fake-api serve [--port N] | blast URL BODY_FILE REQUESTS CONCURRENCY");
    std::process::exit(2)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => {
            let port = match (args.get(1).map(String::as_str), args.get(2)) {
                (Some("--port"), Some(p)) => p.parse().unwrap_or_else(|_| usage()),
                (None, _) => 0,
                _ => usage(),
            };
            let api = FakeApi::start_lean(Shape::Webhook, port);
            println!("{}", api.url);
            // Serve until the driver closes our stdin (or dies).
            let mut sink = Vec::new();
            let _ = std::io::stdin().read_to_end(&mut sink);
        }
        Some("blast") if args.len() == 5 => {
            let url = args[1].clone();
            let body = std::fs::read(&args[2]).unwrap_or_else(|e| panic!("{}: {e}", args[2]));
            let n: usize = args[3].parse().unwrap_or_else(|_| usage());
            let c: usize = args[4].parse().unwrap_or_else(|_| usage());
            let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
            let seconds = rt.block_on(async move {
                let client = reqwest::Client::new();
                let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
                let started = Instant::now();
                let workers: Vec<_> = (0..c)
                    .map(|_| {
                        let (client, next, url, body) = (client.clone(), next.clone(), url.clone(), body.clone());
                        tokio::spawn(async move {
                            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < n {
                                let r = client
                                    .post(&url)
                                    .header("content-type", "application/json")
                                    .body(body.clone())
                                    .send()
                                    .await
                                    .expect("the API answers");
                                assert!(r.status().is_success());
                                r.bytes().await.unwrap();
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    w.await.unwrap();
                }
                started.elapsed().as_secs_f64()
            });
            println!("{{\"seconds\": {seconds}, \"requests\": {n}}}");
        }
        _ => usage(),
    }
}
