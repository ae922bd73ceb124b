//! `decode-cohere`: decodes the raw stream of Cohere Command models on
//! Bedrock (`--provider bedrock-raw`, model `cohere.command…`). Command R
//! streams
//!
//! ```json
//! {"event_type":"text-generation","text":"Hel","is_finished":false}
//! {"event_type":"stream-end","is_finished":true,"finish_reason":"COMPLETE","response":{…}}
//! ```
//!
//! and the older Command models `{"text":"Hel","is_finished":false}`, with
//! `<EOS_TOKEN>` in the text where the model stopped. `text` becomes text,
//! without that token; `finish_reason` the end; the last chunk's invocation
//! metrics the usage. The `stream-end` chunk repeats the whole answer in
//! `response`, which is not sent again. Any field may be `null`, which
//! counts as absent.

use serde::Deserialize;
use streamhost_guest::bedrock::{Decoder, parse};
use streamhost_guest::{ErrorInfo, Event};

/// The marker the older Command models leave in the text at the end.
const END_OF_STREAM: &str = "<EOS_TOKEN>";

#[derive(Deserialize)]
struct Chunk {
    event_type: Option<String>,
    text: Option<String>,
    finish_reason: Option<String>,
}

#[derive(Default)]
pub struct Cohere;

impl Decoder for Cohere {
    fn decode(&mut self, chunk: &[u8]) -> Result<Vec<Event>, ErrorInfo> {
        let chunk: Chunk = parse(chunk)?;
        let is_text = matches!(chunk.event_type.as_deref(), None | Some("text-generation"));
        let text = chunk
            .text
            .filter(|_| is_text)
            .map(|text| text.replace(END_OF_STREAM, ""))
            .filter(|text| !text.is_empty())
            .map(Event::Text);
        let end = chunk.finish_reason.map(|reason| {
            Event::End(match reason.as_str() {
                "COMPLETE" | "END_TURN" => "end_turn".into(),
                "MAX_TOKENS" => "max_tokens".into(),
                "STOP_SEQUENCE" => "stop_sequence".into(),
                _ => reason.to_ascii_lowercase(),
            })
        });
        Ok(text.into_iter().chain(end).collect())
    }
}

streamhost_guest::export_transform!(streamhost_guest::bedrock::Decoding<Cohere>);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_end_of_stream_token_and_the_repeated_response() {
        let mut cohere = Cohere;
        assert_eq!(
            cohere.decode(br#"{"text":" there<EOS_TOKEN>","is_finished":false}"#).unwrap(),
            [Event::Text(" there".into())]
        );
        assert!(cohere.decode(br#"{"text":"<EOS_TOKEN>","is_finished":false}"#).unwrap().is_empty());
        let end = br#"{"event_type":"stream-end","is_finished":true,"finish_reason":"COMPLETE","text":"whole answer","response":{"text":"whole answer"}}"#;
        assert_eq!(cohere.decode(end).unwrap(), [Event::End("end_turn".into())]);
    }

    #[test]
    fn null_is_absent() {
        let mut cohere = Cohere;
        assert!(
            cohere
                .decode(br#"{"event_type":null,"text":null,"is_finished":null,"finish_reason":null}"#)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            cohere.decode(br#"{"event_type":null,"text":"Hi","finish_reason":null}"#).unwrap(),
            [Event::Text("Hi".into())]
        );
        let end = br#"{"event_type":"stream-end","text":null,"is_finished":true,"finish_reason":"MAX_TOKENS","response":null}"#;
        assert_eq!(cohere.decode(end).unwrap(), [Event::End("max_tokens".into())]);
    }
}
