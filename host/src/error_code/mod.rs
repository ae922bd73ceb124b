//! The one table of the host's error codes: each code, the HTTP status it
//! is answered with before a response starts, where a caller meets it, and
//! when. Every error type's `code()` returns an [`ErrorCode`] (or, for a
//! plugin's own refusal, the plugin's code: see [`Code`]); every frontend's
//! error response and every error event the host writes takes its code and
//! status from here. The error table in `docs/http-api.md` is
//! [`markdown_table`], checked by a test.

mod reply;

use std::fmt;

pub use reply::{CodedError, ErrorReply};

/// Where a caller meets a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// An error response, `{"error":{"code":…,"message":…}}`, before the
    /// stream starts.
    Response,
    /// An error event that ends a stream (or a run) after its first byte.
    Stream,
    /// Either: before the first byte as a response, after it as an event.
    Both,
    /// A run's `error` (its record and its last events), or the runs API.
    Run,
    /// Returned to a router or an agent by a host import (`model`, `tools`);
    /// the plugin decides what to do with it, and an unhandled one ends the
    /// stream with it.
    Import,
}

impl Seen {
    fn as_str(self) -> &'static str {
        match self {
            Seen::Response => "response",
            Seen::Stream => "stream",
            Seen::Both => "response, stream",
            Seen::Run => "run",
            Seen::Import => "import",
        }
    }
}

macro_rules! error_codes {
    ($($variant:ident = $code:literal, $status:literal, $seen:ident, $when:literal;)*) => {
        /// A code of the host's own. Its string is stable API: clients match
        /// on it.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $when] $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order of `docs/http-api.md`'s table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),*];

            /// The code as clients see it: `snake_case`.
            pub const fn as_str(self) -> &'static str {
                match self { $(ErrorCode::$variant => $code,)* }
            }

            /// The HTTP status of an error response with this code.
            pub const fn status(self) -> u16 {
                match self { $(ErrorCode::$variant => $status,)* }
            }

            /// Where a caller meets this code.
            pub const fn seen(self) -> Seen {
                match self { $(ErrorCode::$variant => Seen::$seen,)* }
            }

            /// When the host answers with it, in a sentence for `docs/http-api.md`.
            pub const fn when(self) -> &'static str {
                match self { $(ErrorCode::$variant => $when,)* }
            }
        }
    };
}

error_codes! {
    // The caller's request.
    InvalidPluginName = "invalid_plugin_name", 400, Response,
        "a name that is not `[a-z0-9][a-z0-9-]*` (at most 64 bytes), such as `../x` (`curl --path-as-is` sends it as typed; curl otherwise resolves the dots)";
    MalformedJson = "malformed_json", 400, Response, "the body is not JSON";
    InvalidRequest = "invalid_request", 400, Response,
        "the body is not the request's shape (unknown fields are refused)";
    UnreadableBody = "unreadable_body", 400, Response, "the body could not be read to its end";
    ProviderNotConfigured = "provider_not_configured", 400, Both,
        "the request names a model source this host has no settings for";
    InvalidModelRequest = "invalid_model_request", 400, Both,
        "the model call cannot be made as given (no model id, an unknown model family)";
    UnknownChain = "unknown_chain", 400, Response, "the inbound plugin picked a chain the manifest does not name";
    ChainNotAllowed = "chain_not_allowed", 400, Response,
        "`?then=` on a host that serves only named pipelines";
    InvalidLastEventId = "invalid_last_event_id", 400, Run,
        "a `Last-Event-ID` that is not the number of an event the run sent";
    NotAllowed = "not_allowed", 403, Response, "the caller set what the pipeline's `callers` does not allow";
    HostNotAllowed = "host_not_allowed", 403, Response,
        "a server bound to loopback was addressed by another name than a loopback one or one `--allowed-hosts` names";
    OriginNotAllowed = "origin_not_allowed", 403, Response,
        "a page of an origin that is not the host's own and that `--cors-origins` does not name called the host";
    UnknownPlugin = "unknown_plugin", 404, Both, "no such plugin in the store";
    UnknownPipeline = "unknown_pipeline", 404, Response,
        "only named pipelines are served (`--named-pipelines-only`) and this is none";
    NoDefaultPipeline = "no_default_pipeline", 404, Response, "`POST /` on a host with no `--default-pipeline`";
    NotFound = "not_found", 404, Response,
        "no such route, or a path below a pipeline that has no inbound plugin to read it";
    UnknownRun = "unknown_run", 404, Run, "no such run, or a run another caller started";
    MethodNotAllowed = "method_not_allowed", 405, Response, "a method the route does not take";
    BodyTimeout = "body_timeout", 408, Response, "the body did not arrive within `--body-read-timeout-ms` (30 s)";
    BodyTooLarge = "body_too_large", 413, Response, "the body is over `--max-body-bytes` (1 MiB)";
    UploadNotAllowed = "upload_not_allowed", 403, Response,
        "a playground upload on a host without `--playground-upload` or whose plugins come from S3, or of a plugin \
         that a named pipeline or the default pipeline runs";
    InvalidUpload = "invalid_upload", 422, Response,
        "an uploaded file is not a plugin the host can load (not wasm, a core module, another world)";
    TooManyRuns = "too_many_runs", 429, Run,
        "`--max-runs` runs are kept in memory and all are still going, or the caller has `--max-runs-per-caller` under way (with `Retry-After`)";
    // Plugins and their store.
    InvalidPlugin = "invalid_plugin", 500, Both,
        "the file is not wasm, is a core module, is not a streamhost component, imports what the host does not \
         provide, or has another role than its place (a router in a chain)";
    DigestMismatch = "digest_mismatch", 500, Both, "the plugin is pinned (`--pin`) to another sha256 than the store holds";
    InvalidManifest = "invalid_manifest", 500, Response, "a pipeline manifest that is not valid (its reason is in the message)";
    PluginStoreError = "plugin_store_error", 500, Both, "the plugin folder could not be read";
    PluginStoreUnavailable = "plugin_store_unavailable", 503, Both, "S3 cannot be reached for a plugin not loaded yet, or the store cannot be listed (the playground's catalog)";
    PluginTrapped = "plugin_trapped", 500, Both, "a plugin trapped (a panic, an unreachable, a bad memory access)";
    PluginTimeout = "plugin_timeout", 500, Both, "a plugin call ran past `--plugin-timeout-ms` on the wall clock, not counting its waits on the host";
    PluginOutOfFuel = "plugin_out_of_fuel", 500, Both, "a plugin call executed more wasm instructions than `--plugin-fuel`";
    PluginOutOfMemory = "plugin_out_of_memory", 500, Both, "a plugin needed more than `--plugin-memory-mb`";
    PluginOutputLimit = "plugin_output_limit", 500, Both, "a plugin returned or emitted more than `--plugin-call-output-bytes`/`-events` in one call or `--plugin-stream-output-bytes`/`-events` in its stream";
    PluginInvalidEvent = "plugin_invalid_event", 500, Both,
        "a plugin returned or emitted a metadata event that is not a JSON object";
    PreviousResponseNotFound = "previous_response_not_found", 400, Response,
        "a Responses call's `previous_response_id` names no response kept for this caller (never issued, `store: false`, expired, or another caller's)";
    InvalidFilterResult = "invalid_filter_result", 500, Response,
        "an inbound plugin returned a request that is not well formed";
    InvalidRefusal = "invalid_refusal", 500, Response, "an inbound plugin refused with a status that is not 4xx";
    AnswerDropped = "answer_dropped", 500, Response,
        "the model source answered and the chain wrote nothing of it (a formatter that reads only frames, on a source that sends none)";
    Overloaded = "overloaded", 503, Both, "every plugin instance slot (`--max-instances`) is in use";
    // Routers and agents.
    UnknownAgent = "unknown_agent", 500, Stream, "a router chose an agent the pipeline does not name";
    HistoryUnavailable = "history_unavailable", 503, Stream, "the conversation store cannot be read or written";
    TurnTimeout = "turn_timeout", 504, Stream, "a routed turn took longer than `--turn-timeout-ms`";
    ModelCallLimit = "model_call_limit", 500, Import,
        "a router or an agent asked for more than `--max-model-calls` model calls in one turn";
    InvalidModelOptions = "invalid_model_options", 500, Import, "a plugin's model request has `options` that are not valid";
    InvalidToolSpec = "invalid_tool_spec", 500, Import, "a plugin's tool has an input schema that is not a JSON object";
    InvalidToolCall = "invalid_tool_call", 500, Import,
        "a plugin's message holds a tool call whose input is not a JSON object";
    InternalError = "internal_error", 500, Import, "a plugin used a resource the host no longer holds";
    // Model sources: before their first event, after the last attempt.
    UpstreamThrottled = "upstream_throttled", 429, Both, "the model source still throttled after the last attempt";
    UpstreamRejected = "upstream_rejected", 502, Both,
        "the model source refused the request (its error code and message, with ARNs and account ids removed)";
    UpstreamFailed = "upstream_failed", 502, Both,
        "the model source failed with a 500 (not retried: it may have done work), or answered what it cannot read";
    UpstreamUnavailable = "upstream_unavailable", 503, Both,
        "the model source answered 502, 503 or 504, or could not be reached, after the last attempt";
    UpstreamTimeout = "upstream_timeout", 504, Both, "no first event within `--provider-first-event-timeout-ms`";
    // Model sources: inside the stream (Bedrock's exception names, and what
    // the host sees of the connection).
    Throttled = "throttled", 429, Stream, "the source throttled the stream (`ThrottlingException`)";
    ServiceUnavailable = "service_unavailable", 503, Stream, "the source became unavailable (`ServiceUnavailableException`)";
    InternalServerError = "internal_server_error", 502, Stream, "the source failed (`InternalServerException`)";
    ModelTimeout = "model_timeout", 504, Stream, "the model took too long (`ModelTimeoutException`)";
    ModelStreamError = "model_stream_error", 502, Stream, "the model's stream failed (`ModelStreamErrorException`)";
    ValidationError = "validation_error", 502, Stream, "the source refused the request (`ValidationException`)";
    UpstreamDisconnected = "upstream_disconnected", 502, Stream,
        "the connection to the source ended before the source said it had finished";
    UpstreamUnexpectedContent = "upstream_unexpected_content", 502, Stream,
        "the source sent what it cannot read: another content type, a line that is not its format";
    UpstreamError = "upstream_error", 502, Stream, "the source sent an error the host has no name for (its message says which)";
    // Runs.
    RunStoreUnavailable = "run_store_unavailable", 503, Run, "the runs' DynamoDB table cannot be reached";
    RunNotStarted = "run_not_started", 502, Run, "on Lambda, the asynchronous invocation that drives a run could not be made";
    RunTooLarge = "run_too_large", 500, Run, "a run's record and events passed `--max-run-bytes`, or one event 256 KiB";
    RunTimeLimit = "run_time_limit", 504, Run, "a run went on past `--max-run-secs`";
    RunLost = "run_lost", 500, Run, "the host driving the run stopped before it ended";
}

impl serde::Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A failure's code: one of the host's, or one a plugin chose when it
/// refused (`error-info.code`), which is the plugin's own API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code<'a> {
    /// One of the host's codes.
    Host(ErrorCode),
    /// The code a plugin chose (`error-info.code`), as it gave it.
    Plugin(&'a str),
}

impl Code<'_> {
    /// The status a plugin's own refusal is answered with: the request was
    /// well formed, the plugin would not take it (a bad setting, say).
    pub const PLUGIN_REFUSAL_STATUS: u16 = 422;

    /// The code as clients see it.
    pub fn as_str(&self) -> &str {
        match self {
            Code::Host(code) => code.as_str(),
            Code::Plugin(code) => code,
        }
    }

    /// The HTTP status of an error response with this code.
    pub fn status(&self) -> u16 {
        match self {
            Code::Host(code) => code.status(),
            Code::Plugin(_) => Self::PLUGIN_REFUSAL_STATUS,
        }
    }
}

impl From<ErrorCode> for Code<'_> {
    fn from(code: ErrorCode) -> Self {
        Code::Host(code)
    }
}

/// The table of error codes in `docs/http-api.md`, rows in
/// [`ErrorCode::ALL`]'s order.
pub fn markdown_table() -> String {
    let mut table = String::from("| status | code | seen in | when |\n|---|---|---|---|\n");
    for code in ErrorCode::ALL {
        table.push_str(&format!("| {} | `{}` | {} | {} |\n", code.status(), code, code.seen().as_str(), code.when()));
    }
    table
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn every_code_is_unique_snake_case_with_an_error_status() {
        let mut seen = HashSet::new();
        for code in ErrorCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} is listed twice");
            assert!(code.as_str().bytes().all(|byte| byte.is_ascii_lowercase() || byte == b'_'), "{code}");
            assert!((400..600).contains(&code.status()), "{code}: {}", code.status());
        }
    }

    /// The statuses, written out: changing one is an API change, made here
    /// on purpose.
    #[test]
    fn every_code_has_its_status() {
        let statuses: Vec<(&str, u16)> = ErrorCode::ALL.iter().map(|code| (code.as_str(), code.status())).collect();
        assert_eq!(
            statuses,
            [
                ("invalid_plugin_name", 400),
                ("malformed_json", 400),
                ("invalid_request", 400),
                ("unreadable_body", 400),
                ("provider_not_configured", 400),
                ("invalid_model_request", 400),
                ("unknown_chain", 400),
                ("chain_not_allowed", 400),
                ("invalid_last_event_id", 400),
                ("not_allowed", 403),
                ("host_not_allowed", 403),
                ("origin_not_allowed", 403),
                ("unknown_plugin", 404),
                ("unknown_pipeline", 404),
                ("no_default_pipeline", 404),
                ("not_found", 404),
                ("unknown_run", 404),
                ("method_not_allowed", 405),
                ("body_timeout", 408),
                ("body_too_large", 413),
                ("upload_not_allowed", 403),
                ("invalid_upload", 422),
                ("too_many_runs", 429),
                ("invalid_plugin", 500),
                ("digest_mismatch", 500),
                ("invalid_manifest", 500),
                ("plugin_store_error", 500),
                ("plugin_store_unavailable", 503),
                ("plugin_trapped", 500),
                ("plugin_timeout", 500),
                ("plugin_out_of_fuel", 500),
                ("plugin_out_of_memory", 500),
                ("plugin_output_limit", 500),
                ("plugin_invalid_event", 500),
                ("previous_response_not_found", 400),
                ("invalid_filter_result", 500),
                ("invalid_refusal", 500),
                ("answer_dropped", 500),
                ("overloaded", 503),
                ("unknown_agent", 500),
                ("history_unavailable", 503),
                ("turn_timeout", 504),
                ("model_call_limit", 500),
                ("invalid_model_options", 500),
                ("invalid_tool_spec", 500),
                ("invalid_tool_call", 500),
                ("internal_error", 500),
                ("upstream_throttled", 429),
                ("upstream_rejected", 502),
                ("upstream_failed", 502),
                ("upstream_unavailable", 503),
                ("upstream_timeout", 504),
                ("throttled", 429),
                ("service_unavailable", 503),
                ("internal_server_error", 502),
                ("model_timeout", 504),
                ("model_stream_error", 502),
                ("validation_error", 502),
                ("upstream_disconnected", 502),
                ("upstream_unexpected_content", 502),
                ("upstream_error", 502),
                ("run_store_unavailable", 503),
                ("run_not_started", 502),
                ("run_too_large", 500),
                ("run_time_limit", 504),
                ("run_lost", 500),
            ]
        );
    }

    #[test]
    fn a_plugins_own_code_is_a_422() {
        assert_eq!(Code::Plugin("invalid_settings").status(), 422);
        assert_eq!(Code::from(ErrorCode::Overloaded).status(), 503);
    }

    /// The table in `docs/http-api.md` is this table: regenerate it with
    /// `STREAMHOST_WRITE_README=1 cargo test -p streamhost readme_table`.
    #[test]
    fn the_readme_table_is_this_table() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/http-api.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let (begin, end) = ("<!-- error-codes:begin -->\n", "<!-- error-codes:end -->");
        let start = readme.find(begin).expect("docs/http-api.md marks its error table") + begin.len();
        let stop = readme[start..].find(end).expect("docs/http-api.md ends its error table") + start;
        let table = markdown_table();
        if std::env::var_os("STREAMHOST_WRITE_README").is_some() {
            std::fs::write(path, format!("{}{}{}", &readme[..start], table, &readme[stop..])).unwrap();
        } else {
            assert_eq!(
                readme[start..stop],
                table,
                "update docs/http-api.md: `STREAMHOST_WRITE_README=1 cargo test -p streamhost readme_table`"
            );
        }
    }
}
