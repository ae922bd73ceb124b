//! `anthropic-messages-request`: (to be written) a request filter for the standard API route.

use streamhost_guest::request_filter::{IncomingRequest, PipelineRequest, Refusal, RequestFilter, invalid_request};

pub struct Plugin;

impl RequestFilter for Plugin {
    fn filter(_request: IncomingRequest) -> Result<PipelineRequest, Refusal> {
        Err(invalid_request("not written yet"))
    }
}

streamhost_guest::export_request_filter!(Plugin);
