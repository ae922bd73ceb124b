//! `redact`: masks e-mail addresses and payment card numbers in the text of a
//! stream, even when one arrives split across several deltas
//! (`"bob@exa"`, `"mple.com"`). It is a filter: text in, text out, so a
//! formatter such as `ndjson` or `sse` goes after it in the chain.
//!
//! To do that it holds back the end of the text that could still grow into a
//! match (the last word, a run of digit groups) until the next delta or the
//! end of the stream decides it. Text therefore leaves about one word late;
//! nothing is held for longer than [`MAX_HELD`] bytes.
//!
//! Settings (all optional):
//! `{"emails": true, "cards": true, "emailMask": "[email]", "cardMask": "[card]"}`

use std::borrow::Cow;

use regex::{Captures, Regex};
use serde::Deserialize;
use streamhost_guest::{ErrorInfo, Event, StreamContext, Transform};

/// The longest run held back while it might still become a match. An e-mail
/// address is at most 254 bytes and a card number far less, so past this the
/// run is let go (with whatever it contains masked).
pub const MAX_HELD: usize = 256;

const EMAIL: &str = r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}";
/// 13 to 19 digits, optionally grouped by single spaces or hyphens.
const CARD: &str = r"(?-u:\b)[0-9](?:[ -]?[0-9]){12,18}(?-u:\b)";

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields, rename_all = "camelCase")]
struct Settings {
    emails: bool,
    cards: bool,
    email_mask: String,
    card_mask: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self { emails: true, cards: true, email_mask: "[email]".into(), card_mask: "[card]".into() }
    }
}

pub struct Redact {
    settings: Settings,
    email: Regex,
    card: Regex,
    /// Text not yet sent: it may be the start of a match.
    held: String,
}

impl Transform for Redact {
    fn open(_context: StreamContext, settings: &str) -> Result<Self, ErrorInfo> {
        let settings: Settings = serde_json::from_str(settings)
            .map_err(|error| streamhost_guest::error("invalid_config", format!("redact settings: {error}")))?;
        Ok(Self {
            settings,
            email: Regex::new(EMAIL).expect("the e-mail pattern compiles"),
            card: Regex::new(CARD).expect("the card pattern compiles"),
            held: String::new(),
        })
    }

    fn push(&mut self, events: Vec<Event>) -> Result<Vec<Event>, ErrorInfo> {
        let mut out = Vec::with_capacity(events.len());
        for event in events {
            match event {
                Event::Text(text) => {
                    self.held.push_str(&text);
                    let cut = safe_prefix_len(&self.held);
                    out.extend(self.release(cut));
                }
                // Anything else ends the run of text: nothing can continue it.
                other => {
                    out.extend(self.release(self.held.len()));
                    out.push(other);
                }
            }
        }
        Ok(out)
    }

    fn finish(&mut self) -> Result<Vec<Event>, ErrorInfo> {
        Ok(self.release(self.held.len()).into_iter().collect())
    }
}

impl Redact {
    /// Sends the first `len` bytes of the held text, masked.
    fn release(&mut self, len: usize) -> Option<Event> {
        if len == 0 {
            return None;
        }
        let text: String = self.held.drain(..len).collect();
        Some(Event::Text(self.mask(&text).into_owned()))
    }

    fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut text = Cow::Borrowed(text);
        if self.settings.emails {
            text = Cow::Owned(self.email.replace_all(&text, self.settings.email_mask.as_str()).into_owned());
        }
        if self.settings.cards {
            let masked = self.card.replace_all(&text, |found: &Captures<'_>| {
                if luhn_valid(&found[0]) { self.settings.card_mask.clone() } else { found[0].to_string() }
            });
            text = Cow::Owned(masked.into_owned());
        }
        text
    }
}

/// How much of `text` can be sent now: everything before the trailing run
/// that a later delta could still turn into (or extend) a match.
pub fn safe_prefix_len(text: &str) -> usize {
    let bytes = text.as_bytes();
    let mut cut = bytes.len();
    // Runs can chain ("x4111 1111" is an e-mail-ish run then digit groups),
    // so widen the held run until neither kind reaches further back.
    loop {
        let widened = card_run_start(bytes, email_run_start(bytes, cut));
        if widened == cut {
            break;
        }
        cut = widened;
    }
    if bytes.len() - cut > MAX_HELD { bytes.len() } else { cut }
}

fn is_email_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"._%+-@".contains(&byte)
}

fn email_run_start(bytes: &[u8], end: usize) -> usize {
    let mut start = end;
    while start > 0 && is_email_byte(bytes[start - 1]) {
        start -= 1;
    }
    start
}

/// The start of the digit groups (digits, single spaces, hyphens) that end
/// at `end`; a run always starts at a digit.
fn card_run_start(bytes: &[u8], end: usize) -> usize {
    let mut start = end;
    while start > 0 && (bytes[start - 1].is_ascii_digit() || bytes[start - 1] == b' ' || bytes[start - 1] == b'-') {
        start -= 1;
    }
    while start < end && !bytes[start].is_ascii_digit() {
        start += 1;
    }
    start
}

/// The Luhn checksum every payment card number satisfies; it keeps order
/// numbers and timestamps of the same length from being masked.
pub fn luhn_valid(candidate: &str) -> bool {
    let digits = candidate.bytes().filter(u8::is_ascii_digit).map(|byte| u32::from(byte - b'0'));
    let sum: u32 = digits
        .rev()
        .enumerate()
        .map(|(position, digit)| match (position % 2, digit * 2) {
            (0, _) => digit,
            (_, doubled) if doubled > 9 => doubled - 9,
            (_, doubled) => doubled,
        })
        .sum();
    sum.is_multiple_of(10)
}

streamhost_guest::export_transform!(Redact);

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(settings: &str, deltas: &[&str]) -> (Vec<String>, String) {
        let context = StreamContext { plugin: "redact".into(), user_id: None, session_id: None };
        let mut redact = Redact::open(context, settings).unwrap();
        let mut sent = Vec::new();
        for delta in deltas {
            for event in redact.push(vec![Event::Text(delta.to_string())]).unwrap() {
                let Event::Text(text) = event else { panic!("text in, text out") };
                sent.push(text);
            }
        }
        for event in redact.finish().unwrap() {
            let Event::Text(text) = event else { panic!("text in, text out") };
            sent.push(text);
        }
        let whole = sent.concat();
        (sent, whole)
    }

    #[test]
    fn masks_an_email_split_across_deltas() {
        let (sent, whole) = redact("{}", &["write to bob@exa", "mple.co", "m today"]);
        assert_eq!(whole, "write to [email] today");
        assert!(sent.iter().all(|part| !part.contains("bob")), "no part of the address leaks: {sent:?}");
    }

    #[test]
    fn masks_a_card_number_split_across_deltas() {
        let (sent, whole) = redact("{}", &["card 4111 11", "11 1111 1", "111 ok"]);
        assert_eq!(whole, "card [card] ok");
        assert!(sent.iter().all(|part| !part.contains("4111")), "{sent:?}");
    }

    #[test]
    fn leaves_numbers_that_fail_the_checksum() {
        let (_, whole) = redact("{}", &["order 1234 5678 9012 3456 shipped"]);
        assert_eq!(whole, "order 1234 5678 9012 3456 shipped");
    }

    #[test]
    fn sends_text_without_candidates_at_once() {
        let context = StreamContext { plugin: "redact".into(), user_id: None, session_id: None };
        let mut redact = Redact::open(context, "{}").unwrap();
        let out = redact.push(vec![Event::Text("hello there ".into())]).unwrap();
        assert_eq!(out, vec![Event::Text("hello there ".into())]);
    }

    #[test]
    fn other_events_release_held_text_first() {
        let context = StreamContext { plugin: "redact".into(), user_id: None, session_id: None };
        let mut redact = Redact::open(context, "{}").unwrap();
        let out = redact.push(vec![Event::Text("mail a@b.io".into()), Event::End("end_turn".into())]).unwrap();
        assert_eq!(
            out,
            vec![Event::Text("mail ".into()), Event::Text("[email]".into()), Event::End("end_turn".into())]
        );
    }

    #[test]
    fn settings_choose_what_and_how_to_mask() {
        let (_, whole) = redact(r#"{"cards": false, "emailMask": "***"}"#, &["x@y.org 4111111111111111"]);
        assert_eq!(whole, "*** 4111111111111111");
    }

    #[test]
    fn rejects_unknown_settings() {
        let context = StreamContext { plugin: "redact".into(), user_id: None, session_id: None };
        let error = Redact::open(context, r#"{"email": true}"#).err().unwrap();
        assert_eq!(error.code, "invalid_config");
    }

    #[test]
    fn never_holds_more_than_the_limit() {
        let long = "a".repeat(MAX_HELD + 1);
        assert_eq!(safe_prefix_len(&long), long.len());
    }

    #[test]
    fn luhn() {
        assert!(luhn_valid("4111 1111 1111 1111"));
        assert!(luhn_valid("5500-0000-0000-0004"));
        assert!(!luhn_valid("4111 1111 1111 1112"));
    }
}
