//! Conversations in memory, each cut to its latest turns, bounded in number
//! (`--history-max-conversations`) and in bytes (`--history-max-bytes`):
//! past either, the least recently used conversations are dropped, whole;
//! past the bytes with only the conversation just written to left, its own
//! oldest turns go. A turn larger than the byte bound is trimmed
//! ([`trimmed`]).
//!
//! With a file, a journal: one JSON line per change, `["key", turn]` for a
//! turn added and `["key", null]` for a conversation dropped, appended as
//! it happens. At start-up the lines are done again in order, which ends
//! where memory was: the drops are written before the turn that made them,
//! so replaying decides none anew. (A read is a use in memory but is not
//! written: after a restart, the least recently used is the least recently
//! written.) The file is rewritten whole (aside, synced, renamed over) at
//! start-up and once it has grown past twice its length at the last
//! rewrite and 1 MiB more, so appends stay cheap and the file stays within
//! a small multiple of what memory holds. A crash mid-append leaves a last
//! line without its newline, which is ignored; a write that failed part way
//! makes the next change rewrite the file rather than append after it. A
//! file of the format before the journal, one JSON object of conversation
//! key to turns, least recently used first, is read and rewritten as one.

use std::collections::VecDeque;
use std::fmt;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use lru::LruCache;
use tokio::io::AsyncWriteExt;
use tracing::warn;

use super::{ConversationKey, HistoryError, Turn};
use crate::conversation::ModelMessage;

/// What keeping one message costs besides its text: the `Message` in its
/// turn's vector and its string's allocation (an estimate, rounded up).
const MESSAGE_OVERHEAD: u64 = 64;

/// What keeping one turn costs besides its messages and agent name: the
/// `Turn`, its `Arc` and its slot in the conversation (an estimate).
const TURN_OVERHEAD: u64 = 128;

/// What keeping one conversation costs besides its key's text and its
/// turns: the LRU entry and the turns' deque (an estimate).
const CONVERSATION_OVERHEAD: u64 = 256;

/// How much a journal may grow past twice its length at its last rewrite
/// before it is rewritten, in bytes: small files are not rewritten often.
const REWRITE_FLOOR: u64 = 1 << 20;

/// How much the store keeps: turns per conversation, conversations, and
/// bytes in all (as [`turn_size`] and [`base_size`] count them).
#[derive(Debug, Clone, Copy)]
struct Bounds {
    turns: usize,
    conversations: usize,
    bytes: u64,
}

/// A conversation's latest turns, shared with a journal rewrite's snapshot.
struct Conversation {
    turns: VecDeque<Arc<Turn>>,
    /// What it counts against the byte bound: its key, its turns and what
    /// keeping it costs.
    bytes: u64,
}

/// Every conversation, the most recently used first, and their bytes.
struct Conversations {
    lru: LruCache<String, Conversation>,
    bytes: u64,
}

/// Conversations in memory, bounded in number and in bytes, the least
/// recently used dropped first; optionally kept in a journal file.
pub struct MemoryHistory {
    bounds: Bounds,
    conversations: Mutex<Conversations>,
    /// The conversation file, if there is one.
    file: Option<PathBuf>,
    /// The file's writer: one change at a time, in the order memory took
    /// them.
    journal: Option<tokio::sync::Mutex<Journal>>,
}

impl MemoryHistory {
    /// A store keeping `max_turns` turns of each conversation, at most
    /// `max_conversations` conversations and `max_bytes` bytes of them;
    /// with a `file`, what it holds is loaded first (within these bounds),
    /// if it exists, and rewritten as a journal.
    pub fn new(
        max_turns: usize,
        max_conversations: usize,
        max_bytes: u64,
        file: Option<PathBuf>,
    ) -> Result<Self, HistoryError> {
        let bounds = Bounds { turns: max_turns, conversations: max_conversations.max(1), bytes: max_bytes };
        let mut conversations = Conversations { lru: LruCache::unbounded(), bytes: 0 };
        let journal = match &file {
            Some(path) => {
                if path.exists() {
                    read_file(path, &mut conversations, &bounds)?;
                }
                let journal = Journal::rewritten(path.clone(), conversations.snapshot())?;
                Some(tokio::sync::Mutex::new(journal))
            }
            None => None,
        };
        Ok(Self { bounds, conversations: Mutex::new(conversations), file, journal })
    }

    /// The latest `turns` turns, oldest first; a read counts as a use.
    pub fn load(&self, key: &ConversationKey, turns: usize) -> Vec<Turn> {
        let mut conversations = self.conversations.lock().unwrap();
        let Some(conversation) = conversations.lru.get(&key.to_string()) else { return Vec::new() };
        let kept = &conversation.turns;
        kept.iter().skip(kept.len().saturating_sub(turns)).map(|turn| turn.as_ref().clone()).collect()
    }

    /// Adds the turn (trimmed to the byte bound), dropping what the bounds
    /// say, and writes the change to the file when there is one.
    pub async fn append(&self, key: &ConversationKey, turn: Turn) -> Result<(), HistoryError> {
        let key = key.to_string();
        let size = turn_size(&turn);
        let Some(turn) = trimmed(turn, self.bounds.bytes.saturating_sub(base_size(&key))) else {
            warn!(
                bytes = size,
                limit = self.bounds.bytes,
                "a turn larger than --history-max-bytes (its last message alone, or a kept response whole) is not remembered"
            );
            return Ok(());
        };
        let turn = Arc::new(turn);
        let Some(journal) = &self.journal else {
            self.conversations.lock().unwrap().add(&key, turn, &self.bounds);
            return Ok(());
        };
        let mut journal = journal.lock().await;
        let dropped = self.conversations.lock().unwrap().add(&key, turn.clone(), &self.bounds);
        let mut lines = Vec::new();
        for old in &dropped {
            write_line(&mut lines, old, None).expect("a Vec takes every write");
        }
        write_line(&mut lines, &key, Some(&*turn)).expect("a Vec takes every write");
        if journal.due(lines.len() as u64) {
            // Memory holds the change already: the snapshot has it.
            let snapshot = self.conversations.lock().unwrap().snapshot();
            journal.rewrite(snapshot).await
        } else {
            journal.append(&lines).await
        }
    }
}

impl Conversations {
    /// Adds `turn` as `key`'s latest, then drops what `bounds` say: the
    /// conversation's turns past the most kept; then, while past the count
    /// or the bytes, the least recently used other conversation, whole;
    /// then, past the bytes with no other left, this one's oldest turns.
    /// Returns the keys of the conversations dropped, least recently used
    /// first.
    fn add(&mut self, key: &str, turn: Arc<Turn>, bounds: &Bounds) -> Vec<String> {
        if !self.lru.contains(key) {
            let base = base_size(key);
            self.lru.put(key.to_string(), Conversation { turns: VecDeque::new(), bytes: base });
            self.bytes += base;
        }
        let conversation = self.lru.get_mut(key).expect("just added");
        let size = turn_size(&turn);
        conversation.turns.push_back(turn);
        conversation.bytes += size;
        self.bytes += size;
        while conversation.turns.len() > bounds.turns {
            self.bytes -= conversation.pop_oldest();
        }
        let mut dropped = Vec::new();
        while self.lru.len() > bounds.conversations || self.bytes > bounds.bytes {
            // `key` is the most recently used: the least is another, unless
            // it is alone.
            if self.lru.len() > 1 {
                let (old, conversation) = self.lru.pop_lru().expect("more than one");
                self.bytes -= conversation.bytes;
                dropped.push(old);
                continue;
            }
            let conversation = self.lru.peek_mut(key).expect("the one left");
            // Its latest turn fits whole: `trimmed` saw to it.
            if conversation.turns.len() <= 1 {
                break;
            }
            self.bytes -= conversation.pop_oldest();
        }
        dropped
    }

    /// Drops `key`'s conversation, if it is kept.
    fn drop_conversation(&mut self, key: &str) {
        if let Some(conversation) = self.lru.pop(key) {
            self.bytes -= conversation.bytes;
        }
    }

    /// Every conversation's turns, least recently used first: what a
    /// rewritten journal holds, in the order that restores it.
    fn snapshot(&self) -> Vec<(String, Vec<Arc<Turn>>)> {
        self.lru
            .iter()
            .rev()
            .map(|(key, conversation)| (key.clone(), conversation.turns.iter().cloned().collect()))
            .collect()
    }
}

impl Conversation {
    /// Drops the oldest turn; returns what it counted, in bytes.
    fn pop_oldest(&mut self) -> u64 {
        let size = self.turns.pop_front().map_or(0, |turn| turn_size(&turn));
        self.bytes -= size;
        size
    }
}

/// What a turn counts against `--history-max-bytes`: its messages' and its
/// agent's text and what keeping them costs.
fn turn_size(turn: &Turn) -> u64 {
    let agent = turn.agent.as_ref().map_or(0, String::len) as u64;
    TURN_OVERHEAD + agent + turn.messages.iter().map(message_size).sum::<u64>()
}

fn message_size(message: &ModelMessage) -> u64 {
    message.size() as u64 + MESSAGE_OVERHEAD
}

/// What a conversation counts before its turns: its key (the caller's user
/// and session ids) and what keeping it costs.
fn base_size(key: &str) -> u64 {
    CONVERSATION_OVERHEAD + key.len() as u64
}

/// The turn as kept in `room` bytes: whole when it fits; else without its
/// oldest messages, each dropped whole, down to the latest that fit (a
/// caller who sends the whole conversation each turn sent those before);
/// none when even its last message, the answer, does not fit alone.
fn trimmed(mut turn: Turn, room: u64) -> Option<Turn> {
    let mut size = turn_size(&turn);
    if turn.whole {
        return (size <= room).then_some(turn);
    }
    let mut first = 0;
    while size > room && first < turn.messages.len() {
        size -= message_size(&turn.messages[first]);
        first += 1;
    }
    let all_dropped = first > 0 && first == turn.messages.len();
    if size > room || all_dropped {
        return None;
    }
    turn.messages.drain(..first);
    Some(turn)
}

/// Writes one journal line: `["key", turn]`, or `["key", null]` for a
/// conversation dropped.
fn write_line(out: &mut impl Write, key: &str, turn: Option<&Turn>) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &(key, turn))?;
    out.write_all(b"\n")
}

/// Reads the file at `path` into `conversations`, within `bounds`: a
/// journal, or a file of the format before it.
fn read_file(path: &Path, conversations: &mut Conversations, bounds: &Bounds) -> Result<(), HistoryError> {
    let failed = |message: String| HistoryError::File { path: path.to_path_buf(), message };
    let file = std::fs::File::open(path).map_err(|error| failed(error.to_string()))?;
    let mut reader = BufReader::new(file);
    let start = reader.fill_buf().map_err(|error| failed(error.to_string()))?;
    if start.iter().find(|byte| !byte.is_ascii_whitespace()) == Some(&b'{') {
        return load_object(reader, conversations, bounds).map_err(failed);
    }
    let mut line = Vec::new();
    for number in 1u64.. {
        line.clear();
        reader.read_until(b'\n', &mut line).map_err(|error| failed(error.to_string()))?;
        if line.is_empty() {
            break;
        }
        if line.last() != Some(&b'\n') {
            warn!(path = %path.display(), line = number, "the conversation file ends in a line cut short; it is left out");
            break;
        }
        if line.trim_ascii().is_empty() {
            continue;
        }
        let (key, turn): (String, Option<Turn>) = serde_json::from_slice(&line)
            .map_err(|error| failed(format!("line {number} is not a conversation's change: {error}")))?;
        match turn {
            Some(turn) => {
                if let Some(turn) = trimmed(turn, bounds.bytes.saturating_sub(base_size(&key))) {
                    conversations.add(&key, Arc::new(turn), bounds);
                }
            }
            None => conversations.drop_conversation(&key),
        }
    }
    Ok(())
}

/// Reads a file of the format before the journal: one JSON object,
/// conversation key to turns, least recently used first (serde_json's
/// `preserve_order` keeps an object's order).
fn load_object(reader: impl std::io::Read, conversations: &mut Conversations, bounds: &Bounds) -> Result<(), String> {
    let saved: serde_json::Map<String, serde_json::Value> =
        serde_json::from_reader(reader).map_err(|error| format!("not a conversation file: {error}"))?;
    for (key, turns) in saved {
        let turns: Vec<Turn> =
            serde_json::from_value(turns).map_err(|error| format!("not a conversation file: {error}"))?;
        for turn in turns {
            if let Some(turn) = trimmed(turn, bounds.bytes.saturating_sub(base_size(&key))) {
                conversations.add(&key, Arc::new(turn), bounds);
            }
        }
    }
    Ok(())
}

/// The conversation file, written as a journal.
struct Journal {
    path: PathBuf,
    /// Open for appending.
    file: tokio::fs::File,
    /// Its length, in bytes.
    len: u64,
    /// Its length after its last rewrite.
    rewritten: u64,
    /// A write failed part way: the next change rewrites the file rather
    /// than append after a line cut short.
    torn: bool,
}

impl Journal {
    /// The journal at `path`, rewritten to hold `snapshot` alone.
    fn rewritten(path: PathBuf, snapshot: Vec<(String, Vec<Arc<Turn>>)>) -> Result<Self, HistoryError> {
        let len = write_whole(&path, &snapshot).map_err(|error| file_error(&path, &error))?;
        let file = open_to_append(&path).map_err(|error| file_error(&path, &error))?;
        Ok(Self { path, file: tokio::fs::File::from_std(file), len, rewritten: len, torn: false })
    }

    /// Whether the next change of `bytes` is written by a rewrite: after a
    /// torn write, or once the file would have more than doubled since its
    /// last rewrite (and grown by `REWRITE_FLOOR`).
    fn due(&self, bytes: u64) -> bool {
        self.torn || self.len + bytes > 2 * self.rewritten + REWRITE_FLOOR
    }

    /// Appends `lines` (whole lines, each ending in a newline).
    async fn append(&mut self, lines: &[u8]) -> Result<(), HistoryError> {
        let written = async {
            self.file.write_all(lines).await?;
            self.file.flush().await
        };
        if let Err(error) = written.await {
            self.torn = true;
            return Err(file_error(&self.path, &error));
        }
        self.len += lines.len() as u64;
        Ok(())
    }

    /// Replaces the file with `snapshot`, away from the runtime's threads:
    /// it may be tens of megabytes.
    async fn rewrite(&mut self, snapshot: Vec<(String, Vec<Arc<Turn>>)>) -> Result<(), HistoryError> {
        let path = self.path.clone();
        let rewritten = tokio::task::spawn_blocking(move || {
            let len = write_whole(&path, &snapshot)?;
            Ok::<_, std::io::Error>((len, open_to_append(&path)?))
        })
        .await
        .unwrap_or_else(|panicked| Err(std::io::Error::other(panicked.to_string())));
        match rewritten {
            Ok((len, file)) => {
                self.file = tokio::fs::File::from_std(file);
                self.len = len;
                self.rewritten = len;
                self.torn = false;
                Ok(())
            }
            Err(error) => {
                // The old file stands, whole or torn: the next change tries again.
                self.torn = true;
                Err(file_error(&self.path, &error))
            }
        }
    }
}

/// Writes `snapshot` as a journal beside `path`, syncs it and renames it
/// over `path`, so that a crash leaves the old file or the new one, whole.
/// Returns its length.
fn write_whole(path: &Path, snapshot: &[(String, Vec<Arc<Turn>>)]) -> std::io::Result<u64> {
    let aside = path.with_extension("tmp");
    let file = std::fs::File::create(&aside)?;
    let mut out = BufWriter::new(file);
    for (key, turns) in snapshot {
        for turn in turns {
            write_line(&mut out, key, Some(&**turn))?;
        }
    }
    let file = out.into_inner().map_err(std::io::IntoInnerError::into_error)?;
    file.sync_all()?;
    let len = file.metadata()?.len();
    std::fs::rename(&aside, path)?;
    Ok(len)
}

fn open_to_append(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().append(true).open(path)
}

fn file_error(path: &Path, error: &std::io::Error) -> HistoryError {
    HistoryError::File { path: path.to_path_buf(), message: error.to_string() }
}

impl fmt::Display for MemoryHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(path) => write!(f, "memory, saved to {}", path.display()),
            None => write!(f, "memory"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conversation::{ModelMessage, Role};

    const MIB: usize = 1 << 20;

    fn turn(text: &str) -> Turn {
        Turn { agent: Some("a".into()), messages: vec![ModelMessage::text(Role::User, text)], whole: false }
    }

    fn key(session: &str) -> ConversationKey {
        ConversationKey::of(Some("u"), Some(session)).unwrap()
    }

    /// What the store counts it holds, in bytes, and the text it holds.
    fn held(history: &MemoryHistory) -> (u64, usize) {
        let conversations = history.conversations.lock().unwrap();
        let text = conversations
            .lru
            .iter()
            .flat_map(|(_, conversation)| &conversation.turns)
            .flat_map(|turn| &turn.messages)
            .map(ModelMessage::size)
            .sum();
        (conversations.bytes, text)
    }

    #[tokio::test]
    async fn keeps_the_latest_turns_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.json");
        let history = MemoryHistory::new(2, 10, u64::MAX, Some(file.clone())).unwrap();
        for text in ["one", "two", "three"] {
            history.append(&key("s"), turn(text)).await.unwrap();
        }
        assert_eq!(history.load(&key("s"), 10), [turn("two"), turn("three")]);
        assert_eq!(history.load(&key("s"), 1), [turn("three")]);
        let restarted = MemoryHistory::new(2, 10, u64::MAX, Some(file)).unwrap();
        assert_eq!(restarted.load(&key("s"), 10), [turn("two"), turn("three")]);
    }

    #[tokio::test]
    async fn keeps_at_most_its_conversations_the_least_recently_used_going_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.json");
        let history = MemoryHistory::new(5, 2, u64::MAX, Some(file.clone())).unwrap();
        history.append(&key("a"), turn("to a")).await.unwrap();
        history.append(&key("b"), turn("to b")).await.unwrap();
        assert_eq!(history.load(&key("a"), 5), [turn("to a")], "a read is a use");
        history.append(&key("c"), turn("to c")).await.unwrap();
        assert_eq!(history.load(&key("b"), 5), [], "b was the least recently used");
        assert_eq!((history.load(&key("a"), 5), history.load(&key("c"), 5)), (vec![turn("to a")], vec![turn("to c")]));
        // The journal says b was dropped, before c's turn: a restart keeps
        // a and c, a written before c, so a goes first.
        let restarted = MemoryHistory::new(5, 2, u64::MAX, Some(file)).unwrap();
        assert_eq!(restarted.load(&key("b"), 5), [], "dropped stays dropped");
        restarted.append(&key("d"), turn("to d")).await.unwrap();
        assert_eq!(restarted.load(&key("a"), 5), [], "a was the least recently written");
        assert_eq!(restarted.load(&key("c"), 5), [turn("to c")]);
    }

    /// The issue's input: 60 one-turn conversations of 1 MB each. Memory
    /// keeps the latest that fit in the bound, whole, and no more.
    #[tokio::test]
    async fn conversations_are_bounded_in_bytes_the_least_recently_used_dropped_whole() {
        let limit = 8 * MIB as u64;
        let history = MemoryHistory::new(20, 10_000, limit, None).unwrap();
        let megabyte = "x".repeat(1_000_000);
        for session in 0..60 {
            history.append(&key(&session.to_string()), turn(&megabyte)).await.unwrap();
            let (counted, text) = held(&history);
            assert!(counted <= limit && text as u64 <= counted, "{counted} bytes counted, {text} of text");
        }
        let kept: Vec<usize> =
            (0..60).filter(|session| !history.load(&key(&session.to_string()), 20).is_empty()).collect();
        assert_eq!(kept, (52..60).collect::<Vec<_>>(), "the latest eight: 8 MB of text and what keeping it costs");

        // A read is a use: the conversation read last is dropped last.
        history.load(&key("52"), 20);
        history.append(&key("new"), turn(&megabyte)).await.unwrap();
        assert!(!history.load(&key("52"), 20).is_empty() && history.load(&key("53"), 20).is_empty());
    }

    /// The issue's worst case in small: one conversation of many turns of
    /// 1 MiB each keeps its latest turns within the bound.
    #[tokio::test]
    async fn a_conversation_larger_than_the_bound_keeps_its_latest_turns() {
        let history = MemoryHistory::new(20, 10, 4 * MIB as u64, None).unwrap();
        history.append(&key("other"), turn("small")).await.unwrap();
        for n in 0..20 {
            history.append(&key("big"), turn(&format!("{n:02}{}", "x".repeat(MIB - 2)))).await.unwrap();
        }
        let turns = history.load(&key("big"), 20);
        let firsts: Vec<String> = turns.iter().map(|turn| turn.messages[0].text_content()[..2].to_string()).collect();
        assert_eq!(firsts, ["17", "18", "19"], "four turns and what keeping them costs do not fit in 4 MiB");
        assert_eq!(history.load(&key("other"), 20), [], "the other conversation went first, whole");
        assert!(held(&history).0 <= 4 * MIB as u64);
    }

    /// The rule for one turn larger than the bound: its oldest messages go,
    /// whole, down to the latest that fit; a turn whose answer alone does
    /// not fit is not kept, and the conversation keeps what it had.
    #[tokio::test]
    async fn a_turn_larger_than_the_bound_loses_its_oldest_messages_or_is_not_kept() {
        let history = MemoryHistory::new(20, 10, 64 << 10, None).unwrap();
        let message = |role, text: &str| ModelMessage::text(role, text);
        let resent = Turn {
            agent: Some("billing".into()),
            messages: vec![
                message(Role::User, &"earlier ".repeat(10_000)),
                message(Role::Assistant, "an earlier answer"),
                message(Role::User, "and now?"),
                message(Role::Assistant, "now this"),
            ],
            whole: false,
        };
        history.append(&key("s"), resent).await.unwrap();
        let kept = history.load(&key("s"), 20);
        let texts: Vec<String> = kept[0].messages.iter().map(ModelMessage::text_content).collect();
        assert_eq!(texts, ["an earlier answer", "and now?", "now this"]);
        assert_eq!(kept[0].agent.as_deref(), Some("billing"));

        let huge = Turn { agent: None, messages: vec![message(Role::Assistant, &"y".repeat(65 << 10))], whole: false };
        history.append(&key("s"), huge).await.unwrap();
        assert_eq!(history.load(&key("s"), 20), kept, "not kept; the conversation as it was");
        assert_eq!(trimmed(turn("fits"), 10), None, "not even the overhead fits");

        let whole = Turn { whole: true, ..kept[0].clone() };
        assert_eq!(trimmed(whole.clone(), 1 << 20), Some(whole.clone()), "it fits whole");
        assert_eq!(trimmed(whole, 100), None, "a whole turn is never trimmed: not kept");
    }

    /// Each turn appends a line: the file is not rewritten whole; it is
    /// rewritten once it has grown to twice what it held, so it stays near
    /// what memory holds.
    #[tokio::test]
    async fn a_turn_appends_a_line_and_the_file_is_rewritten_only_now_and_then() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.jsonl");
        let history = MemoryHistory::new(1, 10, u64::MAX, Some(file.clone())).unwrap();
        history.append(&key("s"), turn("first")).await.unwrap();
        let first = std::fs::read_to_string(&file).unwrap();
        history.append(&key("s"), turn("second")).await.unwrap();
        let second = std::fs::read_to_string(&file).unwrap();
        assert_eq!(
            second.strip_prefix(&first),
            Some("[\"u#s\",{\"agent\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"second\"}]}]\n")
        );

        // One turn kept, 100 KB a turn: 3 MB appended, the file rewritten
        // past 1 MiB and twice its length.
        let text = "z".repeat(100_000);
        let mut longest = 0;
        for _ in 0..30 {
            history.append(&key("s"), turn(&text)).await.unwrap();
            longest = longest.max(std::fs::metadata(&file).unwrap().len());
        }
        assert!(longest < (1 << 20) + 300_000, "the file grew to {longest} bytes");
        let restarted = MemoryHistory::new(1, 10, u64::MAX, Some(file)).unwrap();
        assert_eq!(restarted.load(&key("s"), 5), [turn(&text)]);
    }

    /// A crash mid-append leaves a line cut short at the end: left out, and
    /// gone once the file is rewritten at start-up. A damaged line before
    /// the end is not a conversation file.
    #[tokio::test]
    async fn a_line_cut_short_at_the_end_is_left_out_and_a_damaged_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.jsonl");
        let history = MemoryHistory::new(5, 10, u64::MAX, Some(file.clone())).unwrap();
        history.append(&key("s"), turn("kept")).await.unwrap();
        drop(history);
        let mut torn = std::fs::read(&file).unwrap();
        torn.extend_from_slice(br#"["u#s",{"agent":"a","messages":[{"role":"user","con"#);
        std::fs::write(&file, &torn).unwrap();
        let restarted = MemoryHistory::new(5, 10, u64::MAX, Some(file.clone())).unwrap();
        assert_eq!(restarted.load(&key("s"), 5), [turn("kept")]);
        restarted.append(&key("s"), turn("after")).await.unwrap();
        let again = MemoryHistory::new(5, 10, u64::MAX, Some(file.clone())).unwrap();
        assert_eq!(again.load(&key("s"), 5), [turn("kept"), turn("after")]);

        std::fs::write(&file, "[\"u#s\",{\"messages\":[]}]\nnot json\n[\"u#s\",null]\n").unwrap();
        let Err(HistoryError::File { message, .. }) = MemoryHistory::new(5, 10, u64::MAX, Some(file)) else {
            panic!("a damaged line is refused")
        };
        assert!(message.starts_with("line 2 is not a conversation's change"), "{message}");
    }

    /// A file of the format before the journal is read, within the bounds,
    /// and rewritten as a journal.
    #[tokio::test]
    async fn a_file_of_the_older_format_is_read_and_rewritten_as_a_journal() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("history.json");
        let old = serde_json::json!({ "u#a": [turn("to a")], "u#b": [turn("one"), turn("two")] });
        std::fs::write(&file, old.to_string()).unwrap();
        let history = MemoryHistory::new(5, 10, u64::MAX, Some(file.clone())).unwrap();
        assert_eq!(history.load(&key("b"), 5), [turn("one"), turn("two")]);
        assert!(std::fs::read_to_string(&file).unwrap().starts_with("[\"u#a\","), "a journal now");
        let restarted = MemoryHistory::new(5, 1, u64::MAX, Some(file)).unwrap();
        assert_eq!((restarted.load(&key("a"), 5), restarted.load(&key("b"), 5).len()), (vec![], 2), "b came last");
    }
}
