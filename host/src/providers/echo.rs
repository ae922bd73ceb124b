//! `echo`: an offline model. It streams the prompt back (or a configured
//! text) token by token at a set pace, so streaming is visible with no
//! model, no network and no credentials. Its output is deterministic.

use std::time::Duration;

use clap::Args;
use futures::{StreamExt, stream};

use super::EventStream;
use crate::event::{Event, Usage};
use crate::request::{Request, Role};

#[derive(Debug, Clone, Args)]
pub struct EchoSettings {
    /// The echo provider's pause before each token.
    #[arg(long = "echo-delay-ms", env = "STREAMHOST_ECHO_DELAY_MS", default_value_t = 30, value_name = "MS")]
    pub delay_ms: u64,

    /// A fixed reply for the echo provider, instead of the prompt.
    #[arg(long = "echo-text", env = "STREAMHOST_ECHO_TEXT", value_name = "TEXT")]
    pub text: Option<String>,
}

pub struct EchoProvider {
    delay: Duration,
    text: Option<String>,
}

impl EchoProvider {
    pub fn new(settings: &EchoSettings) -> Self {
        Self { delay: Duration::from_millis(settings.delay_ms), text: settings.text.clone() }
    }

    pub fn start(&self, request: &Request) -> EventStream {
        let last_user_message = request.messages.iter().rev().find(|message| message.role == Role::User);
        let reply = self.text.clone().or_else(|| last_user_message.map(|message| message.content.clone())).unwrap_or_default();
        let tokens = tokenize(&reply);
        let prompt_tokens = request.system.iter().map(String::as_str).chain(request.messages.iter().map(|message| message.content.as_str()));
        let input_tokens = prompt_tokens.map(|text| tokenize(text).len()).sum::<usize>() as u32;
        let output_tokens = tokens.len() as u32;
        let usage = Usage {
            input_tokens,
            output_tokens,
            total_tokens: input_tokens + output_tokens,
            // Simulated, like the rest: what the configured pace implies.
            latency_ms: (self.delay.as_millis() as u32).saturating_mul(output_tokens),
            cache_read_input_tokens: 0,
            cache_write_input_tokens: 0,
        };

        let delay = self.delay;
        let body = stream::iter(tokens).then(move |token| async move {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            Event::Text(token)
        });
        let tail = stream::iter([Event::Usage(usage), Event::End("end_turn".into())]);
        body.chain(tail).boxed()
    }
}

/// Splits text the way a model's tokens fall: each token is optional
/// leading white space and at most four other characters, so words, e-mail
/// addresses and numbers arrive in pieces, as they do from real models.
pub fn tokenize(text: &str) -> Vec<String> {
    const MAX_TOKEN_CHARS: usize = 4;
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut visible = 0;
    for c in text.chars() {
        let starts_new = if c.is_whitespace() { visible > 0 } else { visible == MAX_TOKEN_CHARS };
        if starts_new {
            tokens.push(std::mem::take(&mut current));
            visible = 0;
        }
        current.push(c);
        if !c.is_whitespace() {
            visible += 1;
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_put_back_together_are_the_text() {
        let text = "Hello there,  bob@example.com\n4111 1111";
        let tokens = tokenize(text);
        assert_eq!(tokens.concat(), text);
        assert_eq!(tokens[..4], ["Hell", "o", " ther", "e,"]);
        assert!(tokens.iter().all(|token| token.trim().chars().count() <= 4));
    }

    #[test]
    fn empty_text_has_no_tokens() {
        assert!(tokenize("").is_empty());
    }
}
