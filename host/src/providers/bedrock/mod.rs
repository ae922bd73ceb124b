//! Amazon Bedrock through the AWS SDK, two [`ModelSource`](super::ModelSource)s
//! on one client: [`Bedrock`] itself (ConverseStream, mapped to events in
//! `converse`) and [`Raw`] (InvokeModelWithResponseStream, whose chunks go
//! on as `frame` events for a decoder plugin).

mod converse;
pub mod raw;

pub use raw::Raw;

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_bedrockruntime::Client;
use aws_sdk_bedrockruntime::config::http::HttpResponse;
use aws_sdk_bedrockruntime::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_bedrockruntime::primitives::event_stream::EventReceiver;
use futures::{StreamExt, stream};
use tracing::warn;

use super::error::{StreamErrorCode, scrub};
use super::{EventStream, UpstreamFailure};
use crate::event::Event;

pub struct Bedrock {
    client: Client,
}

impl Bedrock {
    /// Region, credentials and endpoint (`AWS_ENDPOINT_URL_BEDROCK_RUNTIME`)
    /// come from `config`. The SDK does not retry: the host's own retry
    /// also covers an exception that arrives as the stream's first event.
    pub fn new(config: &SdkConfig) -> Self {
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(std::time::Duration::from_secs(3))
            .disable_operation_timeout()
            .build();
        let bedrock_config = aws_sdk_bedrockruntime::config::Builder::from(config)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            .build();
        Self { client: Client::from_conf(bedrock_config) }
    }
}

/// An exception Bedrock sends inside a stream, by its kind.
trait Exception: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static {
    fn kind(&self) -> StreamErrorCode;
}

/// What one item of an SDK event stream becomes, and whether it is the
/// sign that the source finished its answer.
struct Decoded {
    event: Option<Event>,
    complete: bool,
}

/// An SDK event stream as events. The stream ends with an error event if
/// the SDK reports one, or if the body ends before the item that marks a
/// complete answer (a connection dropped between two frames).
fn receive<T, E>(receiver: EventReceiver<T, E>, decode: impl FnMut(T) -> Decoded + Send + 'static) -> EventStream
where
    T: Send + 'static,
    E: Exception,
{
    stream::unfold(Some((receiver, decode, false)), |state| async move {
        let (mut receiver, mut decode, mut complete) = state?;
        loop {
            match receiver.recv().await {
                Ok(Some(item)) => {
                    let decoded = decode(item);
                    complete |= decoded.complete;
                    if let Some(event) = decoded.event {
                        return Some((event, Some((receiver, decode, complete))));
                    }
                }
                Ok(None) if complete => return None,
                Ok(None) => {
                    return Some((
                        StreamErrorCode::Disconnected.event("Bedrock's stream ended before the model finished"),
                        None,
                    ));
                }
                Err(error) => return Some((stream_error(&error), None)),
            }
        }
    })
    .boxed()
}

/// An exception inside the stream (`throttlingException`, ...) or a broken
/// connection, as an error event.
fn stream_error<E: Exception, R: std::fmt::Debug>(error: &SdkError<E, R>) -> Event {
    match error {
        SdkError::ServiceError(context) => {
            let exception = context.err();
            warn!(code = exception.code(), message = exception.message(), "exception in Bedrock's stream");
            exception.kind().event(scrub(exception.message().unwrap_or("Bedrock reported an error")))
        }
        other => {
            warn!(error = %DisplayErrorContext(other), "Bedrock's stream broke");
            StreamErrorCode::Disconnected.event("the connection to Bedrock broke before the stream ended")
        }
    }
}

/// A call that failed before its stream started, as a failure to retry or
/// answer. The caller gets the service's code and message (scrubbed of
/// account ids), or one short sentence; the SDK's whole chain (credential
/// providers, connectors, internal endpoints) goes to the log only.
fn call_failure<E>(error: SdkError<E, HttpResponse>) -> UpstreamFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    warn!(error = %DisplayErrorContext(&error), "Bedrock call failed");
    match &error {
        SdkError::ServiceError(context) => {
            let exception = context.err();
            let code = exception.code().unwrap_or("error");
            let message = format!("Bedrock: {code}: {}", scrub(exception.message().unwrap_or("")));
            UpstreamFailure::by_status(context.raw().status().as_u16(), message)
        }
        // Most often: no credentials or no region on this host.
        SdkError::ConstructionFailure(_) => {
            UpstreamFailure::Rejected("the host could not build its Bedrock request (see its log)".into())
        }
        // No answer: a model call does no work worth keeping, so it is
        // safe to repeat.
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            UpstreamFailure::Unavailable("Bedrock could not be reached (see the host's log)".into())
        }
        _ => UpstreamFailure::Failed("Bedrock's answer could not be read (see the host's log)".into()),
    }
}
