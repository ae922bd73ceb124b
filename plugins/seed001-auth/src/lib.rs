//! `seed001-auth`: a **request filter** for seed 001's client (AgentCore
//! Runtime proxied through a Lambda stream), which `curl`s the bare URL:
//!
//! ```json
//! {"prompt": "hello world!", "runtimeSessionId": "…", "response": "original" | "transformed"}
//! ```
//!
//! `prompt` is the one user message, `runtimeSessionId` the session id, and
//! `response` picks the chain: absent (or null) or `"original"` runs the
//! pipeline's `transforms`, `"transformed"` its chain named `transformed`.
//! The user id is the credential's: `key:<the API key's name>` (never the
//! key) or `user:<the Basic id>`, so that a caller cannot act as another
//! user in the runtime's memory; a `userId` in the body is ignored.
//!
//! The seed's function authenticates its callers with a scheme of its own
//! (an ID and password, say), so this one does too, before it reads the
//! body. A caller sends an API key (`Authorization: Bearer <key>` or
//! `x-api-key: <key>`) or an id and password (`Authorization: Basic
//! base64(id:password)`). The plugin's settings, the operator's alone (the
//! pipeline manifest's `config.seed001-auth`; a caller cannot set them),
//! hold only SHA-256 digests of the secrets:
//!
//! ```json
//! {
//!   "apiKeys": { "ops": "sha256:<hex of sha256(key)>" },
//!   "users": { "alice": "sha256:<hex of sha256(password)>" },
//!   "realm": "streamhost"
//! }
//! ```
//!
//! A missing or wrong credential is refused with 401 `unauthorized` and a
//! `www-authenticate: Bearer realm="…"` challenge (and a second, `Basic
//! realm="…", charset="UTF-8"`, when users are configured). With no keys
//! and no users, or settings that do not parse, every request is refused
//! the same way and a warning is logged: a pipeline that forgot its keys
//! must not be open.
//!
//! Digests are compared with `subtle`'s constant-time equality, every
//! configured key each time. An early-exit `==` would tell, by its timing,
//! how many leading bytes of a guess's digest match; that is hard to use
//! against a digest (a caller cannot steer it without a preimage), but a
//! constant-time compare costs nothing and leaves no such question. A
//! hand-written XOR fold would do the same in principle, but the compiler
//! may turn it back into an early exit; `subtle` puts an optimisation
//! barrier in its way.
//!
//! The body (after authentication) is read as JSON whatever its
//! `content-type`: `curl -d` labels it `application/x-www-form-urlencoded`.
//! A body that is not a JSON object with a non-blank string `prompt`, or a
//! `response` other than the two values: 400 `invalid_request`.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use streamhost_guest::request_filter::{
    IncomingRequest, PipelineRequest, Refusal, RequestFilter, invalid_request as invalid, json_object, refuse,
    required_text, string_field,
};
use streamhost_guest::{Level, log};
use subtle::{Choice, ConstantTimeEq};

pub struct Seed001Auth;

impl RequestFilter for Seed001Auth {
    fn filter(request: IncomingRequest) -> Result<PipelineRequest, Refusal> {
        let settings = Settings::parse(&streamhost_guest::settings());
        map(&settings, &request)
    }
}

/// The realm named in challenges, unless the settings name another.
const DEFAULT_REALM: &str = "streamhost";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RawSettings {
    #[serde(default)]
    api_keys: BTreeMap<String, Sha256Hex>,
    #[serde(default)]
    users: BTreeMap<String, Sha256Hex>,
    #[serde(default)]
    realm: Option<String>,
}

/// The settings, or why they are unusable (then every request is refused).
#[derive(Debug)]
struct Settings {
    api_keys: BTreeMap<String, Sha256Hex>,
    users: BTreeMap<String, Sha256Hex>,
    realm: String,
    /// Set when no request can pass: no credentials, or bad settings.
    closed: Option<String>,
}

impl Settings {
    fn parse(json: &str) -> Self {
        let parsed = serde_json::from_str::<RawSettings>(json)
            .map_err(|problem| format!("the settings are invalid ({})", redacted(&problem.to_string())))
            .and_then(|raw| match raw.realm.as_deref() {
                Some(realm)
                    if realm.is_empty()
                        || !realm.chars().all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\') =>
                {
                    Err("`realm` must be printable ASCII without `\"` or `\\`".to_string())
                }
                _ => Ok(raw),
            });
        match parsed {
            Ok(raw) => {
                let closed = (raw.api_keys.is_empty() && raw.users.is_empty())
                    .then(|| "no `apiKeys` and no `users` are configured".to_string());
                Self {
                    api_keys: raw.api_keys,
                    users: raw.users,
                    realm: raw.realm.unwrap_or_else(|| DEFAULT_REALM.into()),
                    closed,
                }
            }
            Err(problem) => Self {
                api_keys: BTreeMap::new(),
                users: BTreeMap::new(),
                realm: DEFAULT_REALM.into(),
                closed: Some(problem),
            },
        }
    }
}

/// `message` with every `"…"` span blanked: a parse error may quote a
/// value of the settings, and a misplaced secret must not reach the log.
fn redacted(message: &str) -> String {
    message
        .split('"')
        .enumerate()
        .map(|(index, part)| if index % 2 == 1 { "…" } else { part })
        .collect::<Vec<_>>()
        .join("\"")
}

/// A SHA-256 digest, written `sha256:<64 hex digits>` in the settings.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
struct Sha256Hex([u8; 32]);

impl TryFrom<String> for Sha256Hex {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let hex = text.strip_prefix("sha256:").ok_or("a digest must be written `sha256:<64 hex digits>`")?;
        let digits: Vec<u8> = hex
            .chars()
            .map(|c| c.to_digit(16).map(|d| d as u8))
            .collect::<Option<_>>()
            .ok_or("a digest must be hex digits")?;
        let bytes: Vec<u8> =
            digits.chunks(2).filter(|pair| pair.len() == 2).map(|pair| pair[0] << 4 | pair[1]).collect();
        match <[u8; 32]>::try_from(bytes) {
            Ok(bytes) if digits.len() == 64 => Ok(Self(bytes)),
            _ => Err("a SHA-256 digest has 64 hex digits".into()),
        }
    }
}

fn sha256(secret: &[u8]) -> [u8; 32] {
    Sha256::digest(secret).into()
}

/// Who the caller proved to be.
#[derive(Debug, PartialEq, Eq)]
enum Caller {
    /// The name of the API key it sent.
    Key(String),
    /// The id whose password it sent.
    User(String),
}

impl Caller {
    /// The host's user id for the caller: `key:<name>` or `user:<id>`.
    fn user_id(&self) -> String {
        match self {
            Caller::Key(name) => format!("key:{name}"),
            Caller::User(id) => format!("user:{id}"),
        }
    }
}

/// A credential as sent, not yet checked.
enum Credential {
    ApiKey(String),
    Basic { id: String, password: String },
}

/// The host's request, or the refusal: authenticates, then reads the body.
/// A read of a run started here, and a call through a standard API, are
/// answered with who the caller is (only they may read the run).
fn map(settings: &Settings, request: &IncomingRequest) -> Result<PipelineRequest, Refusal> {
    let caller = authenticate(settings, request)?;
    if request.asks_only_who() {
        return Ok(PipelineRequest::caller(Some(caller.user_id())));
    }
    if request.path != "/" {
        return Err(refuse(
            404,
            "not_found",
            format!("nothing is served at `{}`: post to the pipeline's own URL", request.path),
        ));
    }
    let fields = json_object(&request.body, SHAPE)?;
    let prompt = required_text(&fields, "prompt", SHAPE)?;
    let chain = match fields.get("response") {
        None | Some(Value::Null) => None,
        Some(Value::String(response)) if response == "original" => None,
        Some(Value::String(response)) if response == "transformed" => Some("transformed".to_string()),
        Some(other) => return Err(invalid(format!("`response` must be \"original\" or \"transformed\", not {other}"))),
    };
    let mut mapped = PipelineRequest::prompt(prompt);
    mapped.session_id = string_field(&fields, "runtimeSessionId", "runtimeSessionId")?;
    mapped.user_id = Some(caller.user_id());
    mapped.chain = chain;
    Ok(mapped)
}

const SHAPE: &str = r#"send {"prompt":"…","runtimeSessionId":"…","response":"original"|"transformed"}"#;

/// Checks the caller's credential against the settings' digests.
fn authenticate(settings: &Settings, request: &IncomingRequest) -> Result<Caller, Refusal> {
    if let Some(problem) = &settings.closed {
        log(
            Level::Warn,
            &format!(
                "seed001-auth refuses every request: {problem}; set `apiKeys` or `users` (SHA-256 digests) in the pipeline's `config.seed001-auth`"
            ),
        );
        return Err(unauthorized(settings, "this pipeline accepts no credential yet"));
    }
    // A SigV4 signature (a Function URL under AWS_IAM behind CloudFront's
    // origin access control) is AWS's, not the caller's: the caller's key
    // is then in `x-api-key`.
    let authorization =
        request.header("authorization").filter(|value| !value.trim_start().starts_with("AWS4-HMAC-SHA256"));
    let credential = match authorization {
        Some(authorization) => parse_authorization(authorization).map_err(|problem| unauthorized(settings, problem))?,
        None => match request.header("x-api-key") {
            Some(key) => Credential::ApiKey(key.trim().to_string()),
            None => return Err(unauthorized(settings, required(settings))),
        },
    };
    let caller = match credential {
        Credential::ApiKey(key) => match_key(&settings.api_keys, &key).map(Caller::Key),
        Credential::Basic { id, password } => match_user(&settings.users, &id, &password).then_some(Caller::User(id)),
    };
    caller.ok_or_else(|| {
        log(Level::Info, "seed001-auth refused a wrong credential");
        unauthorized(settings, "the credential is not valid")
    })
}

/// What a caller must send, as the settings allow.
fn required(settings: &Settings) -> &'static str {
    match (settings.api_keys.is_empty(), settings.users.is_empty()) {
        (false, false) => {
            "an API key (`Authorization: Bearer …` or `x-api-key: …`) or an id and password (`Authorization: Basic …`) is required"
        }
        (false, true) => "an API key (`Authorization: Bearer …` or `x-api-key: …`) is required",
        _ => "an id and password (`Authorization: Basic …`) are required",
    }
}

fn parse_authorization(value: &str) -> Result<Credential, &'static str> {
    let (scheme, token) = value.trim().split_once(' ').ok_or("the `authorization` header has no credential")?;
    let token = token.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Ok(Credential::ApiKey(token.to_string()));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err("the `authorization` scheme must be `Bearer` or `Basic`");
    }
    let decoded = BASE64.decode(token).map_err(|_| "the Basic credential is not base64")?;
    let decoded = String::from_utf8(decoded).map_err(|_| "the Basic credential is not UTF-8")?;
    let (id, password) = decoded.split_once(':').ok_or("the Basic credential is not `id:password`")?;
    Ok(Credential::Basic { id: id.to_string(), password: password.to_string() })
}

/// The name of the configured key whose digest is `key`'s. Every key is
/// compared, in constant time, whether one matched already or not.
fn match_key(keys: &BTreeMap<String, Sha256Hex>, key: &str) -> Option<String> {
    if key.is_empty() {
        return None;
    }
    let digest = sha256(key.as_bytes());
    let mut matched = None;
    for (name, expected) in keys {
        let equal: Choice = digest[..].ct_eq(&expected.0[..]);
        if bool::from(equal) {
            matched = Some(name.clone());
        }
    }
    matched
}

/// Whether `password` is `id`'s. An unknown id is compared against a digest
/// no password has, so it takes as long as a known one.
fn match_user(users: &BTreeMap<String, Sha256Hex>, id: &str, password: &str) -> bool {
    const NONE: [u8; 32] = [0; 32];
    let digest = sha256(password.as_bytes());
    let (known, expected) = match users.get(id) {
        Some(expected) => (Choice::from(1), expected.0),
        None => (Choice::from(0), NONE),
    };
    bool::from(known & digest[..].ct_eq(&expected[..]))
}

/// 401 with a challenge per configured scheme.
fn unauthorized(settings: &Settings, message: &str) -> Refusal {
    let realm = &settings.realm;
    let mut refusal = refuse(401, "unauthorized", message);
    refusal.headers.push(("www-authenticate".into(), format!("Bearer realm=\"{realm}\"")));
    if !settings.users.is_empty() {
        refusal.headers.push(("www-authenticate".into(), format!("Basic realm=\"{realm}\", charset=\"UTF-8\"")));
    }
    refusal
}

streamhost_guest::export_request_filter!(Seed001Auth);

#[cfg(test)]
mod tests {
    use super::*;

    // Test secrets only. sha256("test-key-123") and sha256("s3cret-pw").
    const KEY: &str = "test-key-123";
    const KEY_DIGEST: &str = "sha256:625faa3fbbc3d2bd9d6ee7678d04cc5339cb33dc68d9b58451853d60046e226a";
    const PASSWORD: &str = "s3cret-pw";
    const PASSWORD_DIGEST: &str = "sha256:e1e748fd3cd8c6cb8f19c746a76c041d0f4a8a7fa90097bce2b25469d05e2112";

    fn settings() -> Settings {
        Settings::parse(&format!(
            r#"{{"apiKeys":{{"ops":"{KEY_DIGEST}"}},"users":{{"alice":"{PASSWORD_DIGEST}"}},"realm":"seed001"}}"#
        ))
    }

    fn request(headers: &[(&str, &str)], body: &str) -> IncomingRequest {
        IncomingRequest {
            method: "POST".into(),
            path: "/".into(),
            query: String::new(),
            headers: headers.iter().map(|(name, value)| (name.to_string(), value.to_string())).collect(),
            body: body.as_bytes().to_vec(),
            request_context: None,
        }
    }

    fn basic(id: &str, password: &str) -> String {
        format!("Basic {}", BASE64.encode(format!("{id}:{password}")))
    }

    fn challenges(refusal: &Refusal) -> Vec<&str> {
        refusal.headers.iter().filter(|(name, _)| name == "www-authenticate").map(|(_, value)| value.as_str()).collect()
    }

    #[test]
    fn a_run_read_is_identified_not_mapped() {
        let key = [("x-api-key", KEY)];
        let mut read = request(&key, "");
        read.method = "GET".into();
        read.path = "/runs/0123456789abcdef0123456789abcdef".into();
        let mapped = map(&settings(), &read).unwrap();
        assert_eq!((mapped.user_id.as_deref(), mapped.messages.len()), (Some("key:ops"), 0));
        read.headers.clear();
        assert_eq!(map(&settings(), &read).expect_err("no credential").status, 401);
    }

    #[test]
    fn the_digests_are_sha256_of_the_test_secrets() {
        assert_eq!(Sha256Hex::try_from(KEY_DIGEST.to_string()).unwrap().0, sha256(KEY.as_bytes()));
        assert_eq!(Sha256Hex::try_from(PASSWORD_DIGEST.to_string()).unwrap().0, sha256(PASSWORD.as_bytes()));
        // The well-known digest of "abc" (FIPS 180-2), upper-case hex.
        let abc = "sha256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD";
        assert_eq!(Sha256Hex::try_from(abc.to_string()).unwrap().0, sha256(b"abc"));
    }

    #[test]
    fn maps_the_seed_body_for_an_api_key() {
        let body = r#"{"prompt":"hello world!","runtimeSessionId":"afa31b91-a767-41f1-a7bc-d9cbf8c4cfd3","response":"transformed"}"#;
        let bearer = format!("Bearer {KEY}");
        for headers in [vec![("authorization", bearer.as_str())], vec![("x-api-key", KEY)]] {
            let mapped = map(&settings(), &request(&headers, body)).unwrap();
            assert_eq!(mapped.messages[0].text(), "hello world!");
            assert_eq!(mapped.session_id.as_deref(), Some("afa31b91-a767-41f1-a7bc-d9cbf8c4cfd3"));
            assert_eq!(mapped.chain.as_deref(), Some("transformed"));
            // The key's name, never the key.
            assert_eq!(mapped.user_id.as_deref(), Some("key:ops"));
        }
    }

    #[test]
    fn original_or_no_response_runs_the_transforms() {
        for body in
            [r#"{"prompt":"hi"}"#, r#"{"prompt":"hi","response":"original"}"#, r#"{"prompt":"hi","response":null}"#]
        {
            let mapped = map(&settings(), &request(&[("x-api-key", KEY)], body)).unwrap();
            assert_eq!((mapped.chain, mapped.session_id), (None, None), "{body}");
        }
    }

    #[test]
    fn basic_authenticates_a_user_whose_id_is_the_credentials() {
        let authorization = basic("alice", PASSWORD);
        let mapped = map(&settings(), &request(&[("authorization", &authorization)], r#"{"prompt":"hi"}"#)).unwrap();
        assert_eq!(mapped.user_id.as_deref(), Some("user:alice"));
        let mapped =
            map(&settings(), &request(&[("authorization", &authorization)], r#"{"prompt":"hi","userId":"victim"}"#))
                .unwrap();
        assert_eq!(mapped.user_id.as_deref(), Some("user:alice"), "a caller cannot act as another user");
        let signed = [
            ("authorization", "AWS4-HMAC-SHA256 Credential=AKID/20261130/us-east-1/lambda/aws4_request, Signature=x"),
            ("x-api-key", KEY),
        ];
        assert_eq!(
            map(&settings(), &request(&signed, r#"{"prompt":"hi"}"#)).unwrap().user_id.as_deref(),
            Some("key:ops"),
            "AWS's signature is not the caller's"
        );
        // The scheme is case-insensitive; a password may hold a colon.
        let colon = Settings::parse(&format!(r#"{{"users":{{"bob":"sha256:{}"}}}}"#, hex(&sha256(b"a:b"))));
        assert!(
            map(
                &colon,
                &request(&[("authorization", &basic("bob", "a:b").replace("Basic", "basic"))], r#"{"prompt":"hi"}"#)
            )
            .is_ok()
        );
    }

    #[test]
    fn a_missing_or_wrong_credential_is_401_with_challenges() {
        let wrong_basic = basic("alice", "nope");
        let unknown_user = basic("mallory", PASSWORD);
        let key_as_password = basic("ops", KEY);
        let cases: Vec<Vec<(&str, &str)>> = vec![
            vec![],
            vec![("x-api-key", "wrong")],
            vec![("x-api-key", "")],
            vec![("authorization", "Bearer wrong")],
            vec![("authorization", "Bearer")],
            vec![("authorization", &wrong_basic)],
            vec![("authorization", &unknown_user)],
            vec![("authorization", &key_as_password)],
            vec![("authorization", "Basic !!!")],
            vec![("authorization", "Digest username=\"alice\"")],
            // The authorization header is the credential when both are sent.
            vec![("authorization", "Bearer wrong"), ("x-api-key", KEY)],
        ];
        for headers in cases {
            let refusal = map(&settings(), &request(&headers, r#"{"prompt":"hi"}"#)).expect_err("refused");
            assert_eq!((refusal.status, refusal.error.code.as_str()), (401, "unauthorized"), "{headers:?}");
            assert_eq!(
                challenges(&refusal),
                ["Bearer realm=\"seed001\"", "Basic realm=\"seed001\", charset=\"UTF-8\""],
                "{headers:?}"
            );
            assert!(!refusal.error.message.contains(KEY) && !refusal.error.message.contains(PASSWORD));
        }
    }

    #[test]
    fn keys_only_challenge_bearer_alone_in_the_default_realm() {
        let keys_only = Settings::parse(&format!(r#"{{"apiKeys":{{"ops":"{KEY_DIGEST}"}}}}"#));
        let refusal = map(&keys_only, &request(&[], r#"{"prompt":"hi"}"#)).expect_err("refused");
        assert_eq!(challenges(&refusal), ["Bearer realm=\"streamhost\""]);
        assert!(refusal.error.message.contains("API key"));
        // Basic against no users never passes.
        assert_eq!(
            map(&keys_only, &request(&[("authorization", &basic("ops", KEY))], r#"{"prompt":"hi"}"#))
                .expect_err("refused")
                .status,
            401
        );
    }

    #[test]
    fn no_or_bad_settings_close_the_pipeline() {
        let bearer = format!("Bearer {KEY}");
        for json in [
            "{}".to_string(),
            r#"{"apiKeys":{},"users":{}}"#.to_string(),
            "not json".to_string(),
            // A key in the clear instead of a digest.
            format!(r#"{{"apiKeys":{{"ops":"{KEY}"}}}}"#),
            // A typo of `apiKeys`.
            format!(r#"{{"apikeys":{{"ops":"{KEY_DIGEST}"}}}}"#),
            r#"{"apiKeys":{"ops":"sha256:abcd"}}"#.to_string(),
            format!(r#"{{"apiKeys":{{"ops":"{KEY_DIGEST}"}},"realm":"a\"b"}}"#),
        ] {
            let settings = Settings::parse(&json);
            assert!(settings.closed.is_some(), "{json}");
            let refusal =
                map(&settings, &request(&[("authorization", &bearer)], r#"{"prompt":"hi"}"#)).expect_err("refused");
            assert_eq!((refusal.status, refusal.error.code.as_str()), (401, "unauthorized"), "{json}");
            assert_eq!(challenges(&refusal), ["Bearer realm=\"streamhost\""]);
        }
    }

    #[test]
    fn the_body_is_read_only_after_authentication_and_whatever_its_content_type() {
        // Without a credential, a malformed body is still 401, not 400.
        assert_eq!(map(&settings(), &request(&[], "garbage")).expect_err("refused").status, 401);
        // `curl -d` labels the JSON as a form.
        let curl = request(
            &[("content-type", "application/x-www-form-urlencoded"), ("x-api-key", KEY)],
            r#"{"prompt":"hello"}"#,
        );
        assert_eq!(map(&settings(), &curl).unwrap().messages[0].text(), "hello");
    }

    #[test]
    fn refuses_a_malformed_body_or_response() {
        for body in [
            "",
            "prompt=hi",
            "[]",
            r#"{"query":"hi"}"#,
            r#"{"prompt":1}"#,
            r#"{"prompt":" "}"#,
            r#"{"prompt":"hi","response":"raw"}"#,
            r#"{"prompt":"hi","response":true}"#,
            r#"{"prompt":"hi","runtimeSessionId":5}"#,
        ] {
            let refusal = map(&settings(), &request(&[("x-api-key", KEY)], body)).expect_err("refused");
            assert_eq!(
                (refusal.status, refusal.error.code.as_str()),
                (400, "invalid_request"),
                "{body}: {}",
                refusal.error.message
            );
        }
        let refusal = map(&settings(), &request(&[("x-api-key", KEY)], r#"{"prompt":"hi","response":"raw"}"#))
            .expect_err("refused");
        assert!(refusal.error.message.contains("\"original\" or \"transformed\""), "{}", refusal.error.message);
    }

    #[test]
    fn refuses_other_paths_once_authenticated() {
        let mut other = request(&[("x-api-key", KEY)], r#"{"prompt":"hi"}"#);
        other.path = "/invocations".into();
        assert_eq!(map(&settings(), &other).expect_err("refused").status, 404);
    }

    #[test]
    fn a_settings_error_never_quotes_a_value() {
        let settings = Settings::parse(&format!(r#"{{"apiKeys":"{KEY}"}}"#));
        let problem = settings.closed.unwrap();
        assert!(problem.starts_with("the settings are invalid") && !problem.contains(KEY), "{problem}");
        let typo = Settings::parse(r#"{"apikeys":{}}"#).closed.unwrap();
        assert!(typo.contains("unknown field `apikeys`"), "{typo}");
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}
