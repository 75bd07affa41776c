//! A loopback HTTP/1 server on a thread of its own, for the test kit's stand-ins (the fake
//! destination API, the Lambda Runtime API): bound before `serve` returns, stopped when the
//! returned sender is dropped.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response};
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

/// Serves `handle` on `127.0.0.1:port` (0: any free port), with `workers` threads; returns the
/// address and the handle that keeps the server running.
pub fn serve<H, F>(port: u16, workers: usize, handle: H) -> (SocketAddr, tokio::sync::oneshot::Sender<()>)
where
    H: Fn(Request<hyper::body::Incoming>) -> F + Clone + Send + Sync + 'static,
    F: Future<Output = Response<Full<Bytes>>> + Send + 'static,
{
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let (shutdown, stop) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt =
            tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().expect("runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.expect("bind a loopback port");
            ready_tx.send(listener.local_addr().expect("address")).expect("report the port");
            let accept = async {
                loop {
                    let Ok((stream, _)) = listener.accept().await else { continue };
                    let handle = handle.clone();
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            let answer = handle(req);
                            async move { Ok::<_, std::convert::Infallible>(answer.await) }
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            };
            tokio::select! {
                _ = accept => {}
                _ = stop => {}
            }
        });
    });
    let addr = ready_rx.recv_timeout(Duration::from_secs(10)).expect("the server started");
    (addr, shutdown)
}
