//! The id of the call being answered, carried in a task-local so that
//! every error body and log line made within the call can name it.

use std::sync::Arc;

/// The id of the call being answered: 128 bits from the operating system's
/// random source (a kept Responses answer is found by it), in hex on `serve`,
/// Lambda's own request id on Lambda. It is in the call's log lines (its
/// span), its `x-request-id` header and its error body.
#[derive(Debug, Clone)]
pub struct RequestId(Arc<str>);

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

impl RequestId {
    /// A new random id.
    pub fn new() -> Self {
        let mut bytes = [0u8; 16];
        getrandom::getrandom(&mut bytes).expect("the operating system has randomness");
        Self(format!("{:032x}", u128::from_be_bytes(bytes)).into())
    }

    /// The id as given (Lambda's `aws_request_id`).
    pub fn from_given(id: &str) -> Self {
        Self(id.into())
    }

    /// The id, as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Runs `call` with this as its id: error bodies made within carry it.
    pub async fn scope<F: std::future::Future>(self, call: F) -> F::Output {
        REQUEST_ID.scope(self, call).await
    }

    /// The id of the call running this, if it has one.
    pub fn current() -> Option<Self> {
        REQUEST_ID.try_with(Clone::clone).ok()
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(&self.0)
    }
}
