//! Runs in a DynamoDB table: partition key `run` (the run id), sort key
//! `seq`. Item 0 is the run's record: its own fields as JSON in `record`
//! (written by the host driving it), its sinks' delivery in the map
//! `sinks` (each written by its sink), `claimed` (set once, by the host
//! that drives it) and `cancelRequested`. Items 1… are
//! its events, `kind` and `data`. Every item has `expiresAt`, for the
//! table's TTL. Reads are strongly consistent: a subscriber served by
//! another host sees every event the driver has written.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};

use super::{RunStoreError, StoredEvent};
use crate::runs::{RunId, RunRecord, SinkStatus};

/// BatchWriteItem's most items per call.
const BATCH: usize = 25;

/// How often unprocessed items of a batch are sent again before giving up.
const BATCH_RETRIES: u32 = 8;

pub struct DynamoRuns {
    client: Client,
    table: String,
    ttl: Duration,
}

type Item = HashMap<String, AttributeValue>;

impl DynamoRuns {
    pub fn new(client: Client, table: String, ttl: Duration) -> Self {
        Self { client, table, ttl }
    }

    fn key(id: &RunId, seq: u64) -> Item {
        HashMap::from([
            ("run".to_string(), AttributeValue::S(id.to_string())),
            ("seq".to_string(), AttributeValue::N(seq.to_string())),
        ])
    }

    fn expires_at(&self, created_ms: u64) -> AttributeValue {
        AttributeValue::N(((created_ms / 1000) + self.ttl.as_secs()).to_string())
    }

    pub async fn create(&self, record: &RunRecord) -> Result<(), RunStoreError> {
        let sinks = record.sinks.iter().map(|(name, status)| (name.clone(), AttributeValue::S(json(status)))).collect();
        let mut item = Self::key(&record.id, 0);
        item.extend([
            ("record".to_string(), AttributeValue::S(json(&own_fields(record)))),
            ("sinks".to_string(), AttributeValue::M(sinks)),
            ("cancelRequested".to_string(), AttributeValue::Bool(false)),
            ("expiresAt".to_string(), self.expires_at(record.created_ms)),
        ]);
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(#run)")
            .expression_attribute_names("#run", "run")
            .send()
            .await
            .map_err(|error| unavailable(&error))?;
        Ok(())
    }

    pub async fn save(&self, record: &RunRecord) -> Result<(), RunStoreError> {
        self.update(
            &record.id,
            "SET #record = :record",
            [("#record", "record")],
            [(":record", AttributeValue::S(json(&own_fields(record))))],
        )
        .await
    }

    pub async fn save_sink(&self, id: &RunId, name: &str, status: &SinkStatus) -> Result<(), RunStoreError> {
        self.update(
            id,
            "SET #sinks.#name = :status",
            [("#sinks", "sinks"), ("#name", name)],
            [(":status", AttributeValue::S(json(status)))],
        )
        .await
    }

    pub async fn claim(&self, id: &RunId) -> Result<bool, RunStoreError> {
        let claimed = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id, 0)))
            .update_expression("SET #claimed = :yes")
            .condition_expression("attribute_exists(#run) AND attribute_not_exists(#claimed)")
            .expression_attribute_names("#run", "run")
            .expression_attribute_names("#claimed", "claimed")
            .expression_attribute_values(":yes", AttributeValue::Bool(true))
            .send()
            .await;
        match claimed {
            Ok(_) => Ok(true),
            Err(error)
                if error.as_service_error().is_some_and(|error| error.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(error) => Err(unavailable(&error)),
        }
    }

    pub async fn request_cancel(&self, id: &RunId) -> Result<(), RunStoreError> {
        self.update(id, "SET #cancel = :yes", [("#cancel", "cancelRequested")], [(":yes", AttributeValue::Bool(true))])
            .await
    }

    /// Updates the existing record item `id` (never creates one).
    async fn update<'a>(
        &self,
        id: &RunId,
        expression: &str,
        names: impl IntoIterator<Item = (&'a str, &'a str)>,
        values: impl IntoIterator<Item = (&'a str, AttributeValue)>,
    ) -> Result<(), RunStoreError> {
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id, 0)))
            .update_expression(expression)
            .condition_expression("attribute_exists(#run)")
            .expression_attribute_names("#run", "run");
        for (placeholder, name) in names {
            update = update.expression_attribute_names(placeholder, name);
        }
        for (placeholder, value) in values {
            update = update.expression_attribute_values(placeholder, value);
        }
        update.send().await.map_err(|error| unavailable(&error))?;
        Ok(())
    }

    pub async fn get(&self, id: &RunId) -> Result<Option<RunRecord>, RunStoreError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(Self::key(id, 0)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| unavailable(&error))?;
        output.item().map(record_of).transpose()
    }

    pub async fn append(&self, record: &RunRecord, events: &[StoredEvent]) -> Result<(), RunStoreError> {
        let (id, expires_at) = (&record.id, self.expires_at(record.created_ms));
        for batch in events.chunks(BATCH) {
            let writes = batch.iter().map(|event| {
                let mut item = Self::key(id, event.seq);
                item.extend([
                    ("kind".to_string(), AttributeValue::S(event.kind.clone())),
                    ("data".to_string(), AttributeValue::S(event.data.clone())),
                    ("expiresAt".to_string(), expires_at.clone()),
                ]);
                WriteRequest::builder()
                    .put_request(PutRequest::builder().set_item(Some(item)).build().expect("the item is set"))
                    .build()
            });
            self.write_all(writes.collect()).await?;
        }
        Ok(())
    }

    /// Writes one batch whole: DynamoDB may leave items unprocessed under
    /// load, and those are sent again, with backoff.
    async fn write_all(&self, mut writes: Vec<WriteRequest>) -> Result<(), RunStoreError> {
        for attempt in 0..BATCH_RETRIES {
            let output = self
                .client
                .batch_write_item()
                .request_items(&self.table, writes)
                .send()
                .await
                .map_err(|error| unavailable(&error))?;
            writes = output.unprocessed_items.and_then(|mut left| left.remove(&self.table)).unwrap_or_default();
            if writes.is_empty() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25 << attempt)).await;
        }
        Err(RunStoreError::Unavailable(format!(
            "DynamoDB left {} events unwritten after {BATCH_RETRIES} attempts",
            writes.len()
        )))
    }

    pub async fn read(&self, id: &RunId, after: u64, limit: usize) -> Result<Vec<StoredEvent>, RunStoreError> {
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#run = :run AND #seq > :after")
            .expression_attribute_names("#run", "run")
            .expression_attribute_names("#seq", "seq")
            .expression_attribute_values(":run", AttributeValue::S(id.to_string()))
            .expression_attribute_values(":after", AttributeValue::N(after.to_string()))
            .consistent_read(true)
            .limit(limit.min(i32::MAX as usize) as i32)
            .send()
            .await
            .map_err(|error| unavailable(&error))?;
        output.items().iter().map(event_of).collect()
    }
}

/// The fields the driver owns: the sinks and the cancel flag are kept
/// apart, so that their writers do not overwrite each other.
fn own_fields(record: &RunRecord) -> RunRecord {
    RunRecord { sinks: Default::default(), cancel_requested: false, ..record.clone() }
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).expect("plain data serialises")
}

fn record_of(item: &Item) -> Result<RunRecord, RunStoreError> {
    let damaged = |what: &str| RunStoreError::Unavailable(format!("a stored run has no valid `{what}`"));
    let text = item.get("record").and_then(|value| value.as_s().ok()).ok_or_else(|| damaged("record"))?;
    let mut record: RunRecord = serde_json::from_str(text).map_err(|_| damaged("record"))?;
    if let Some(Ok(sinks)) = item.get("sinks").map(AttributeValue::as_m) {
        for (name, status) in sinks {
            let status =
                status.as_s().ok().and_then(|text| serde_json::from_str(text).ok()).ok_or_else(|| damaged("sinks"))?;
            record.sinks.insert(name.clone(), status);
        }
    }
    record.cancel_requested =
        item.get("cancelRequested").and_then(|value| value.as_bool().ok()).copied().unwrap_or(false);
    Ok(record)
}

fn event_of(item: &Item) -> Result<StoredEvent, RunStoreError> {
    let damaged = |what: &str| RunStoreError::Unavailable(format!("a stored run event has no valid `{what}`"));
    let text = |name: &str| item.get(name).and_then(|value| value.as_s().ok()).cloned().ok_or_else(|| damaged(name));
    let seq = item.get("seq").and_then(|value| value.as_n().ok()?.parse().ok()).ok_or_else(|| damaged("seq"))?;
    Ok(StoredEvent { seq, kind: text("kind")?, data: text("data")? })
}

fn unavailable<E: std::error::Error + 'static>(error: &E) -> RunStoreError {
    RunStoreError::Unavailable(DisplayErrorContext(error).to_string())
}

impl fmt::Display for DynamoRuns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DynamoDB table {}", self.table)
    }
}
