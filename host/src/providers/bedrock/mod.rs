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

use super::error::{StreamErrorCode, end_at_error};
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
    events: Vec<Event>,
    complete: bool,
}

/// How the items of one SDK event stream become events.
trait Decode<T>: Send + 'static {
    /// What `item` becomes.
    fn decode(&mut self, item: T) -> Decoded;

    /// What is still held when the stream ends, after the item that marked
    /// it complete (a block never closed): closed now, never dropped.
    fn end(&mut self) -> Vec<Event> {
        Vec::new()
    }
}

/// An SDK event stream as events. The stream ends with an error event if
/// the SDK reports one, if the body ends before the item that marks a
/// complete answer (a connection dropped between two frames), or at the
/// first error the decoder makes. A source that must send that item
/// (ConverseStream's `messageStop`, which is an `end` event; raw mode's
/// invocation metrics, inside a frame) cannot end with nothing said.
fn receive<T, E, D>(receiver: EventReceiver<T, E>, decoder: D) -> EventStream
where
    T: Send + 'static,
    E: Exception,
    D: Decode<T>,
{
    stream::unfold(Some((receiver, decoder, false)), |state| async move {
        let (mut receiver, mut decoder, mut complete) = state?;
        loop {
            match receiver.recv().await {
                Ok(Some(item)) => {
                    let Decoded { mut events, complete: marks_complete } = decoder.decode(item);
                    complete |= marks_complete;
                    if end_at_error(&mut events) {
                        return Some((events, None));
                    }
                    if !events.is_empty() {
                        return Some((events, Some((receiver, decoder, complete))));
                    }
                }
                Ok(None) if complete => {
                    let mut events = decoder.end();
                    end_at_error(&mut events);
                    return (!events.is_empty()).then_some((events, None));
                }
                Ok(None) => {
                    let message = "Bedrock's stream ended before the model finished";
                    return Some((vec![StreamErrorCode::Disconnected.event(message)], None));
                }
                Err(error) => return Some((vec![stream_error(&error)], None)),
            }
        }
    })
    .flat_map(stream::iter)
    .boxed()
}

/// An exception inside the stream (`throttlingException`, ...) or a broken
/// connection, as an error event.
fn stream_error<E: Exception, R: std::fmt::Debug>(error: &SdkError<E, R>) -> Event {
    match error {
        SdkError::ServiceError(context) => {
            let exception = context.err();
            warn!(code = exception.code(), message = exception.message(), "exception in Bedrock's stream");
            exception.kind().event(exception.message().unwrap_or("Bedrock reported an error"))
        }
        other => {
            warn!(error = %DisplayErrorContext(other), "Bedrock's stream broke");
            StreamErrorCode::Disconnected.event("the connection to Bedrock broke before the stream ended")
        }
    }
}

/// A call that failed before its stream started, as a failure to retry or
/// answer. The caller gets the service's code and message (scrubbed of ARNs
/// and account ids on their way out, in `Providers::start`), or one short
/// sentence; the SDK's whole chain (credential providers, connectors,
/// internal endpoints) goes to the log only.
fn call_failure<E>(error: SdkError<E, HttpResponse>) -> UpstreamFailure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    warn!(error = %DisplayErrorContext(&error), "Bedrock call failed");
    match &error {
        SdkError::ServiceError(context) => {
            let exception = context.err();
            let code = exception.code().unwrap_or("error");
            let message = format!("Bedrock: {code}: {}", exception.message().unwrap_or(""));
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
