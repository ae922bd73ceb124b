//! What the bench binaries share.

use std::time::Duration;

/// The middle of the samples: robust to the odd slow run of a busy machine.
pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
