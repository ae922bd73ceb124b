//! Conversations in a DynamoDB table: one item per turn, partition key
//! `conversation` (`user#session`), sort key `turn` (microseconds since the
//! epoch), the messages as JSON in `messages`, the agent in `agent`, and
//! `expiresAt` for the table's TTL. Loading is one Query, newest first.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::types::AttributeValue;

use super::{ConversationKey, HistoryError, Turn};

/// Conversations in a DynamoDB table, one item per turn.
pub struct DynamoHistory {
    client: Client,
    table: String,
    ttl: Duration,
}

impl DynamoHistory {
    /// The store in `table`, whose items expire `ttl_days` days after they
    /// are written.
    pub fn new(client: Client, table: String, ttl_days: u64) -> Self {
        Self { client, table, ttl: Duration::from_secs(ttl_days * 24 * 3600) }
    }

    /// The latest `turns` turns, oldest first (one Query, newest first).
    pub async fn load(&self, key: &ConversationKey, turns: usize) -> Result<Vec<Turn>, HistoryError> {
        if turns == 0 {
            return Ok(Vec::new());
        }
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("conversation = :conversation")
            .expression_attribute_values(":conversation", AttributeValue::S(key.to_string()))
            .scan_index_forward(false)
            .limit(turns.min(i32::MAX as usize) as i32)
            .send()
            .await
            .map_err(|error| unavailable(&error))?;
        let mut loaded = output.items().iter().map(turn_of).collect::<Result<Vec<_>, _>>()?;
        loaded.reverse();
        Ok(loaded)
    }

    /// Puts the turn as a new item, its `turn` the time now in microseconds;
    /// a second turn in the same microsecond fails rather than replace it.
    pub async fn append(&self, key: &ConversationKey, turn: Turn) -> Result<(), HistoryError> {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let messages = serde_json::to_string(&turn.messages).expect("messages serialise");
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("conversation", AttributeValue::S(key.to_string()))
            .item("turn", AttributeValue::N(now.as_micros().to_string()))
            .item("messages", AttributeValue::S(messages))
            .item("expiresAt", AttributeValue::N((now + self.ttl).as_secs().to_string()))
            // Two turns of one session in the same microsecond: the second
            // fails rather than replace the first.
            .condition_expression("attribute_not_exists(turn)");
        if let Some(agent) = turn.agent {
            put = put.item("agent", AttributeValue::S(agent));
        }
        put.send().await.map_err(|error| unavailable(&error))?;
        Ok(())
    }
}

fn turn_of(item: &std::collections::HashMap<String, AttributeValue>) -> Result<Turn, HistoryError> {
    let damaged = |what: &str| HistoryError::Unavailable(format!("a stored turn has no valid `{what}`"));
    let messages = item.get("messages").and_then(|value| value.as_s().ok()).ok_or_else(|| damaged("messages"))?;
    let messages = serde_json::from_str(messages).map_err(|_| damaged("messages"))?;
    let agent = item.get("agent").and_then(|value| value.as_s().ok()).cloned();
    Ok(Turn { agent, messages, whole: false })
}

fn unavailable<E: std::error::Error + 'static>(error: &E) -> HistoryError {
    HistoryError::Unavailable(DisplayErrorContext(error).to_string())
}

impl fmt::Display for DynamoHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DynamoDB table {}", self.table)
    }
}
