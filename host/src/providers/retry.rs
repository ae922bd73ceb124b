//! Retries before the first event. A source that throttles or is
//! unavailable, whether it says so with an HTTP status or with an exception
//! as its first stream event, is tried again after a pause; once an event
//! has arrived the stream is the caller's and is never retried (a retry
//! would repeat text already sent).

use std::future::Future;
use std::time::Duration;

use futures::{StreamExt, stream};
use tracing::warn;

use super::{ProviderError, Started, UpstreamFailure};
use crate::event::Event;

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    pub attempts: u32,
    pub backoff: Duration,
    pub first_event_timeout: Duration,
}

impl RetryPolicy {
    /// Runs `attempt` until one yields a first event that is not a failure,
    /// or the attempts are used up.
    pub async fn start<F, Fut>(&self, mut attempt: F) -> Result<Started, ProviderError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Started, UpstreamFailure>>,
    {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let outcome = tokio::time::timeout(self.first_event_timeout, until_first_event(attempt()))
                .await
                .unwrap_or(Err(UpstreamFailure::Timeout(self.first_event_timeout)));
            match outcome {
                Ok(started) => return Ok(started),
                Err(failure) if failure.is_retryable() && attempts < self.attempts => {
                    let pause = self.pause_before(attempts + 1);
                    warn!(%failure, attempt = attempts, ?pause, "model source failed before its first event; trying again");
                    tokio::time::sleep(pause).await;
                }
                Err(failure) => return Err(ProviderError::Upstream { failure, attempts }),
            }
        }
    }

    /// Exponential backoff with "equal jitter": half the doubled pause, plus
    /// a random part of the other half, so that callers throttled together
    /// do not come back together.
    fn pause_before(&self, attempt: u32) -> Duration {
        let full = self.backoff.saturating_mul(1 << (attempt - 2).min(16));
        let half = full / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Waits for the source's first event; an error event in its place is the
/// attempt's failure.
async fn until_first_event(
    start: impl Future<Output = Result<Started, UpstreamFailure>>,
) -> Result<Started, UpstreamFailure> {
    let mut started = start.await?;
    match started.events.next().await {
        Some(Event::Error(error)) => Err(UpstreamFailure::from_stream_error(&error)),
        Some(first) => {
            started.events = stream::iter([first]).chain(started.events).boxed();
            Ok(started)
        }
        // Over before it began: an empty answer is never a success, from
        // whichever source (each also says why in its own terms).
        None => Err(UpstreamFailure::Failed("the model source ended its answer without sending anything".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_with_jitter() {
        let policy = RetryPolicy {
            attempts: 4,
            backoff: Duration::from_millis(100),
            first_event_timeout: Duration::from_secs(1),
        };
        for (attempt, full_ms) in [(2, 100), (3, 200), (4, 400)] {
            let pause = policy.pause_before(attempt);
            assert!(
                pause >= Duration::from_millis(full_ms / 2) && pause <= Duration::from_millis(full_ms),
                "{pause:?}"
            );
        }
    }
}
