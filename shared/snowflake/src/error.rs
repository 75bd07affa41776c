//! What goes wrong with Snowflake, said so that the reader knows what to check. Messages carry
//! Snowflake's own text and codes, never a credential.

use snowflake_connector_rs::ErrorKind;

#[derive(Debug, thiserror::Error)]
pub enum SnowflakeError {
    #[error("Snowflake credentials: {0}")]
    Credentials(String),

    #[error("the Snowflake connection settings are invalid: {0}")]
    Config(String),

    #[error(
        "Snowflake refused the login of user {user:?} to account {account:?}: {message}; check the user, \
             its credentials ({credentials}) and, for auth = \"key_pair\", that the user's RSA_PUBLIC_KEY \
             matches the private key"
    )]
    Login { account: String, user: String, credentials: String, message: String },

    #[error("cannot reach Snowflake at {url}: {message}; check the account identifier, the endpoint and the network")]
    Network { url: String, message: String },

    #[error(
        "{what}: {object} does not exist or the role {role} cannot see it ({message}); check the name (as \
             Snowflake stores it: upper case unless created quoted), the source's database and schema, and the \
             role's grants"
    )]
    Missing { what: String, object: String, role: String, message: String },

    #[error(
        "{what}: the query ran longer than query_timeout ({timeout}) and was cancelled; raise the source's \
             query_timeout or narrow the window"
    )]
    Timeout { what: String, timeout: String },

    #[error("{what}: Snowflake answered {code}: {message}")]
    Query { what: String, code: String, message: String },

    #[error("{what}: {message}")]
    Data { what: String, message: String },
}

/// Where a failure happened, to name it in the message.
pub(crate) struct Context<'a> {
    pub what: String,
    pub object: &'a str,
    pub role: &'a str,
    pub timeout: std::time::Duration,
    /// The base URL, for network errors.
    pub url: &'a str,
}

/// Snowflake's "does not exist or not authorized" codes (SQL compilation errors).
const MISSING: [&str; 3] = ["002003", "000904", "002043"];

pub(crate) fn query_error(e: snowflake_connector_rs::Error, ctx: &Context<'_>) -> SnowflakeError {
    let code = e.snowflake_code().unwrap_or_default().to_string();
    let message = e.snowflake_message().map(str::to_string).unwrap_or_else(|| e.to_string());
    if e.is_timeout() {
        return SnowflakeError::Timeout { what: ctx.what.clone(), timeout: humanize(ctx.timeout) };
    }
    match e.kind() {
        ErrorKind::Server if MISSING.contains(&code.as_str()) => SnowflakeError::Missing {
            what: ctx.what.clone(),
            object: ctx.object.to_string(),
            role: ctx.role.to_string(),
            message,
        },
        ErrorKind::Network => SnowflakeError::Network { url: ctx.url.to_string(), message },
        _ => SnowflakeError::Query {
            what: ctx.what.clone(),
            code: if code.is_empty() { format!("{:?}", e.kind()) } else { code },
            message,
        },
    }
}

fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}
