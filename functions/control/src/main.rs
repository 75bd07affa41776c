//! The control Lambda: a function URL request (IAM-authenticated) is one action on managed
//! exports or orchestrations; the answer is always an HTTP response. Settings and clients are
//! built once per cold start; a bad setting fails the start with a message saying which.

use lambda_runtime::{run, service_fn, Diagnostic, LambdaEvent};

use sluice_control_fn::{settings_from_env, App};

fn main() -> Result<(), lambda_runtime::Error> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(serve())
}

async fn serve() -> Result<(), lambda_runtime::Error> {
    sluice_connect::function_logging();
    // A start that fails (a missing setting, a bad config) fails every invocation with why.
    let settings = settings_from_env().map_err(|e| sluice_core::run::error_chain(&e))?;
    let app = App::init(settings).await.map_err(|e| sluice_core::run::error_chain(&e))?;
    let app = &app;
    run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        Ok::<_, Diagnostic>(app.handle(&event.payload).await)
    }))
    .await
}
