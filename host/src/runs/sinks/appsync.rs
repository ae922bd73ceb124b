//! An AppSync API as a sink: one GraphQL mutation per event, in order, as
//! seed 003's function sends them (`appsync/schema.graphql`): by default
//! each text chunk as `sendChunk(conversationId, chunk)`, which AppSync
//! pushes to the `onReceiveChunk(conversationId)` subscribers. Requests
//! follow AppSync's GraphQL-over-HTTP API (`POST {"query", "variables"}`),
//! authenticated with an API key (`x-api-key`) or SigV4 (service
//! `appsync`).
//!
//! A mutation gets the variables it declares of: `conversationId` (the
//! run's), `chunk` (a text or raw event's text, else its data as JSON),
//! `error` (an error event's message), `status` (a `done` event's), `type`,
//! `seq` and `runId`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::{AppSyncAuth, AppSyncSink, Failure, Sinks};
use crate::aws::Signer;
use crate::runs::{RunRecord, StoredEvent};

/// Seed 003's chunk mutation. Subscribers receive the fields it selects.
pub const SEND_CHUNK: &str = "mutation SendChunk($conversationId: ID!, $chunk: String!) { sendChunk(conversationId: $conversationId, chunk: $chunk) { conversationId chunk } }";

/// A sink ready to send: its URL, its credentials and mutations resolved.
pub(in crate::runs) struct Ready {
    url: String,
    auth: Auth,
    mutations: BTreeMap<String, String>,
    pub(super) events: Vec<String>,
}

enum Auth {
    ApiKey(String),
    Iam(Signer),
}

impl AppSyncSink {
    pub(super) async fn target(&self, sinks: &Sinks) -> Result<Ready, String> {
        let settings = &sinks.settings;
        let url = self.url.clone().or_else(|| settings.appsync_url.clone()).filter(|url| !url.is_empty());
        let url = url.ok_or("an appsync sink needs a `url`, or the host's --appsync-url")?;
        let api_key = self.api_key.clone().or_else(|| settings.appsync_api_key.clone());
        let auth = match (
            self.auth.unwrap_or(if api_key.is_some() { AppSyncAuth::ApiKey } else { AppSyncAuth::Iam }),
            api_key,
        ) {
            (AppSyncAuth::ApiKey, Some(key)) => Auth::ApiKey(key),
            (AppSyncAuth::ApiKey, None) => {
                return Err(
                    "an appsync sink with `\"auth\": \"apiKey\"` needs an `apiKey`, or the host's --appsync-api-key"
                        .into(),
                );
            }
            (AppSyncAuth::Iam, _) => {
                let region = self.region.clone().or_else(|| region_of(&url));
                Auth::Iam(
                    Signer::new(
                        &sinks.aws().await,
                        "appsync",
                        region.as_deref(),
                        "an appsync sink with `\"auth\": \"iam\"`",
                    )
                    .map_err(|error| error.to_string())?,
                )
            }
        };
        let mutations = self
            .mutations
            .clone()
            .unwrap_or_else(|| ["text", "raw"].map(|kind| (kind.to_string(), SEND_CHUNK.to_string())).into());
        let events = mutations.keys().cloned().collect();
        Ok(Ready { url, auth, mutations, events })
    }
}

/// The region in an AppSync endpoint's host name.
fn region_of(url: &str) -> Option<String> {
    let host = url::Url::parse(url).ok()?.host_str()?.to_string();
    let (_, rest) = host.split_once(".appsync-api.")?;
    Some(rest.split('.').next()?.to_string())
}

impl Ready {
    pub(super) async fn send(
        &self,
        client: &reqwest::Client,
        record: &RunRecord,
        event: &StoredEvent,
    ) -> Result<(), Failure> {
        let mutation = &self.mutations[&event.kind];
        let body = json!({ "query": mutation, "variables": variables(mutation, record, event) }).to_string();
        let content_type = [("content-type", "application/json".to_string())];
        let auth = match &self.auth {
            Auth::ApiKey(key) => vec![("x-api-key".to_string(), key.clone())],
            Auth::Iam(signer) => signer
                .headers("POST", &self.url, &content_type, body.as_bytes())
                .await
                .map_err(|error| Failure { message: error.to_string(), retry: false })?,
        };
        let headers = content_type.into_iter().map(|(name, value)| (name.to_string(), value)).chain(auth);
        self.post(client, headers.collect(), body).await
    }

    /// POSTs the mutation; a GraphQL `errors` answer is a failure too (the
    /// subscribers did not get the chunk).
    async fn post(
        &self,
        client: &reqwest::Client,
        headers: Vec<(String, String)>,
        body: String,
    ) -> Result<(), Failure> {
        let request = headers.iter().fold(client.post(&self.url), |request, (name, value)| request.header(name, value));
        let response = request.body(body).send().await.map_err(Failure::of_send)?;
        let status = response.status();
        let text = response.text().await.map_err(Failure::of_send)?;
        if !status.is_success() {
            return Err(Failure::of_response(status, &text));
        }
        let Ok(Value::Object(answer)) = serde_json::from_str::<Value>(&text) else {
            let text: String = text.chars().take(200).collect();
            return Err(Failure {
                message: format!("answered {status} with what is not a GraphQL response: {text}"),
                retry: false,
            });
        };
        match answer.get("errors") {
            Some(errors) if !errors.is_null() => {
                Err(Failure { message: format!("answered GraphQL errors: {errors}"), retry: true })
            }
            _ if answer.get("data").is_none_or(Value::is_null) => {
                Err(Failure { message: "answered a GraphQL response with no data".into(), retry: false })
            }
            _ => Ok(()),
        }
    }
}

/// The variables `mutation` declares, of those a sink offers.
fn variables(mutation: &str, record: &RunRecord, event: &StoredEvent) -> Value {
    let data: Value = serde_json::from_str(&event.data).unwrap_or(Value::Null);
    let text = |value: &Value| value.as_str().map_or_else(|| value.to_string(), str::to_string);
    let offered = [
        ("conversationId", json!(record.conversation)),
        ("chunk", json!(text(&data))),
        ("error", json!(data.get("message").map(text).unwrap_or_default())),
        ("status", json!(data.get("status").map(text).unwrap_or_default())),
        ("type", json!(event.kind)),
        ("seq", json!(event.seq)),
        ("runId", json!(record.id)),
    ];
    let declared = offered.into_iter().filter(|(name, _)| declares(mutation, name));
    Value::Object(declared.map(|(name, value)| (name.to_string(), value)).collect::<Map<_, _>>())
}

/// Whether `mutation` uses the variable `$name` (and not only a longer
/// name that starts with it).
fn declares(mutation: &str, name: &str) -> bool {
    let variable = format!("${name}");
    mutation
        .match_indices(&variable)
        .any(|(at, _)| !mutation[at + variable.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_region_in_an_appsync_url() {
        assert_eq!(region_of("https://abc.appsync-api.eu-west-1.amazonaws.com/graphql").as_deref(), Some("eu-west-1"));
        assert_eq!(region_of("http://127.0.0.1:20002/graphql"), None);
    }

    #[test]
    fn offers_only_declared_variables() {
        assert!(declares(SEND_CHUNK, "chunk"));
        assert!(!declares("mutation M($chunks: String) { x }", "chunk"));
        assert!(!declares(SEND_CHUNK, "seq"));
    }
}
