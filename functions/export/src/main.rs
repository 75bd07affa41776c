//! The export Lambda: an EventBridge schedule or a direct invocation names an export; the
//! function runs it once and returns the run summary. Settings and clients are built once per
//! cold start; a bad setting fails the start with a message saying which.

use lambda_runtime::{run, service_fn, Diagnostic, LambdaEvent};

use sluice_export_fn::{settings_from_env, App, FnError};

#[derive(Debug)]
struct Failure(FnError);

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Diagnostic {
        Diagnostic { error_type: f.0.error_type().into(), error_message: sluice_core::run::error_chain(&f.0) }
    }
}

fn main() -> Result<(), lambda_runtime::Error> {
    sluice_connect::bound_allocator();
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve())
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    sluice_connect::function_logging();
    // The runtime sends SIGTERM before it shuts the environment down: a run under way stops at
    // its next step, is recorded as interrupted, and gives its lease back instead of leaving it
    // to expire.
    let (interrupter, interrupt) = sluice_core::stop::interrupt_channel();
    if let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        tokio::spawn(async move {
            term.recv().await;
            tracing::warn!("SIGTERM: stopping the run under way");
            interrupter.interrupt("SIGTERM");
        });
    }
    let app = App::init(settings_from_env()?).await?.interruptible(interrupt);
    let app = &app;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let deadline = sluice_aws::invocation_deadline(event.context.deadline);
        app.handle(&event.payload, deadline).await.map_err(Failure)
    }))
    .await
}
