//! The integration Lambda: S3 object-created events for manifests (directly, through
//! EventBridge, or buffered in SQS) become deliveries to the integration's API. Settings and
//! clients are built once per cold start; a bad setting fails the start with a message saying which.

use lambda_runtime::{run, service_fn, Diagnostic, LambdaEvent};

use sluice_integrate_fn::{App, FnError, Settings};

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
    let app = App::init(Settings::from_env()?).await.map_err(|e| sluice_core::run::error_chain(&e))?;
    let app = &app;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        let deadline = sluice_aws::invocation_deadline(event.context.deadline);
        app.handle(&event.payload, deadline).await.map_err(Failure)
    }))
    .await
}
