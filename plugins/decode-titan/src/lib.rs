//! `decode-titan`: decodes the raw stream of Amazon Titan Text models on
//! Bedrock (`--provider bedrock-raw`, model `amazon.titan-text…`). Each
//! chunk is
//!
//! ```json
//! {"outputText":"Hel","index":0,"totalOutputTextTokenCount":1,"completionReason":null,"inputTextTokenCount":5}
//! ```
//!
//! `outputText` becomes text; `completionReason` (`FINISH`, `LENGTH`,
//! `STOP_CRITERIA_MET`, `CONTENT_FILTERED`) the end; the last chunk's
//! invocation metrics the usage. Any field may be `null`, which counts as
//! absent.

use serde::Deserialize;
use streamhost_guest::bedrock::{Decoder, parse};
use streamhost_guest::{ErrorInfo, Event};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    output_text: Option<String>,
    completion_reason: Option<String>,
}

#[derive(Default)]
pub struct Titan;

impl Decoder for Titan {
    fn decode(&mut self, chunk: &[u8]) -> Result<Vec<Event>, ErrorInfo> {
        let chunk: Chunk = parse(chunk)?;
        let text = chunk.output_text.filter(|text| !text.is_empty()).map(Event::Text);
        let end = chunk.completion_reason.map(|reason| {
            Event::End(match reason.as_str() {
                "FINISH" => "end_turn".into(),
                "LENGTH" => "max_tokens".into(),
                "STOP_CRITERIA_MET" => "stop_sequence".into(),
                "CONTENT_FILTERED" => "content_filtered".into(),
                _ => reason.to_ascii_lowercase(),
            })
        });
        Ok(text.into_iter().chain(end).collect())
    }
}

streamhost_guest::export_transform!(streamhost_guest::bedrock::Decoding<Titan>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_output_text_and_completion_reason() {
        let mut titan = Titan;
        let first = titan.decode(br#"{"outputText":"Hi","index":0,"totalOutputTextTokenCount":1,"completionReason":null,"inputTextTokenCount":5}"#);
        assert_eq!(first.unwrap(), [Event::Text("Hi".into())]);
        let last = titan.decode(
            br#"{"outputText":"","index":0,"totalOutputTextTokenCount":2,"completionReason":"STOP_CRITERIA_MET"}"#,
        );
        assert_eq!(last.unwrap(), [Event::End("stop_sequence".into())]);
    }

    #[test]
    fn null_is_absent() {
        let mut titan = Titan;
        let nulls = br#"{"outputText":null,"index":null,"totalOutputTextTokenCount":null,"completionReason":null,"inputTextTokenCount":null}"#;
        assert!(titan.decode(nulls).unwrap().is_empty());
        let last = titan.decode(br#"{"outputText":null,"index":0,"completionReason":"FINISH"}"#);
        assert_eq!(last.unwrap(), [Event::End("end_turn".into())]);
    }
}
