//! A webhook as a sink: one POST per batch of events, signed as the
//! Standard Webhooks specification (standardwebhooks.com) says, so that a
//! receiver checks it with any of that spec's libraries: headers
//! `webhook-id` (`{run id}-{sink name}-{first sequence number}`, the same
//! across retries of a delivery), `webhook-timestamp` (Unix seconds) and
//! `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
//! `{id}.{timestamp}.{body}`). The secret is base64, after an optional
//! `whsec_` prefix, as the specification's libraries read it.
//!
//! The body: `{"runId", "conversationId", "events": [{"seq", "type",
//! "data"}]}`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use super::{Failure, SinkSettings, WebhookSink};
use crate::manifest::sinks::signing_key;
use crate::runs::{RunRecord, StoredEvent};

pub(in crate::runs) struct Ready {
    url: String,
    key: Vec<u8>,
    pub(super) events: Option<Vec<String>>,
}

impl WebhookSink {
    pub(super) fn target(&self, settings: &SinkSettings) -> Result<Ready, String> {
        let secret = self.secret.clone().or_else(|| settings.webhook_secret.clone());
        let secret =
            secret.ok_or("a webhook sink needs a `secret`, or the host's --webhook-secret: deliveries are signed")?;
        Ok(Ready { url: self.url.clone(), key: signing_key(&secret)?, events: self.events.clone() })
    }
}

/// The `webhook-signature` header's value for a delivery.
fn signature(key: &[u8], id: &str, timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

impl Ready {
    pub(super) async fn send(
        &self,
        client: &reqwest::Client,
        record: &RunRecord,
        sink: &str,
        events: &[&StoredEvent],
    ) -> Result<(), Failure> {
        let events: Vec<Value> = events
            .iter()
            .map(|event| json!({ "seq": event.seq, "type": event.kind, "data": serde_json::from_str::<Value>(&event.data).unwrap_or(Value::Null) }))
            .collect();
        let id = format!("{}-{sink}-{}", record.id, events[0]["seq"]);
        let body = json!({ "runId": record.id, "conversationId": record.conversation, "events": events }).to_string();
        let timestamp = crate::runs::now_ms() / 1000;
        let response = client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature(&self.key, &id, timestamp, &body))
            .body(body)
            .send()
            .await
            .map_err(Failure::of_send)?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        Err(Failure::of_response(status, &response.text().await.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Standard Webhooks specification's own example.
    #[test]
    fn signs_as_the_specification_example() {
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let body = r#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&key, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }
}
