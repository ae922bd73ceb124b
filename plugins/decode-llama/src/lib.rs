//! `decode-llama`: decodes the raw stream of Meta Llama models on Bedrock
//! (`--provider bedrock-raw`, model `meta.llama…`). Each chunk is
//!
//! ```json
//! {"generation":"Hel","prompt_token_count":12,"generation_token_count":1,"stop_reason":null}
//! ```
//!
//! `generation` becomes text; `stop_reason` (`stop`, `length`) the end; the
//! last chunk's invocation metrics the usage. Any field may be `null`, which
//! counts as absent. Chain a formatter after it:
//! `POST /decode-llama?then=ndjson`.

use serde::Deserialize;
use streamhost_guest::bedrock::{Decoder, parse};
use streamhost_guest::{ErrorInfo, Event};

#[derive(Deserialize)]
struct Chunk {
    generation: Option<String>,
    stop_reason: Option<String>,
}

#[derive(Default)]
pub struct Llama;

impl Decoder for Llama {
    fn decode(&mut self, chunk: &[u8]) -> Result<Vec<Event>, ErrorInfo> {
        let chunk: Chunk = parse(chunk)?;
        let text = chunk.generation.filter(|text| !text.is_empty()).map(Event::Text);
        let end = chunk.stop_reason.map(|reason| {
            Event::End(match reason.as_str() {
                "stop" => "end_turn".into(),
                "length" => "max_tokens".into(),
                _ => reason,
            })
        });
        Ok(text.into_iter().chain(end).collect())
    }
}

streamhost_guest::export_transform!(streamhost_guest::bedrock::Decoding<Llama>);

#[cfg(test)]
mod tests {
    use streamhost_guest::bedrock::Decoding;
    use streamhost_guest::{StreamContext, Transform, Usage};

    use super::*;

    #[test]
    fn decodes_generations_stop_and_usage() {
        let context = StreamContext { plugin: "decode-llama".into(), user_id: None, session_id: None };
        let mut decoder = Decoding::<Llama>::open(context, "{}").unwrap();
        let chunks = [
            r#"{"generation":"Hel","prompt_token_count":12,"generation_token_count":1,"stop_reason":null}"#,
            r#"{"generation":"lo","prompt_token_count":null,"generation_token_count":2,"stop_reason":"length","amazon-bedrock-invocationMetrics":{"inputTokenCount":12,"outputTokenCount":2,"invocationLatency":310,"firstByteLatency":120}}"#,
        ];
        let mut events = vec![Event::Metadata("{}".into())];
        events.extend(chunks.iter().map(|chunk| Event::Frame(chunk.as_bytes().to_vec())));
        let usage = Usage {
            input_tokens: 12,
            output_tokens: 2,
            total_tokens: 14,
            latency_ms: 310,
            cache_read_input_tokens: 0,
            cache_write_input_tokens: 0,
        };
        assert_eq!(
            decoder.push(events).unwrap(),
            [
                Event::Metadata("{}".into()),
                Event::Text("Hel".into()),
                Event::Text("lo".into()),
                Event::End("max_tokens".into()),
                Event::Usage(usage)
            ]
        );
        let error = decoder.push(vec![Event::Frame(b"<html>".to_vec())]).unwrap_err();
        assert_eq!(error.code, "undecodable_chunk");
    }

    #[test]
    fn null_is_absent() {
        let nulls =
            br#"{"generation":null,"prompt_token_count":null,"generation_token_count":null,"stop_reason":null}"#;
        assert!(Llama.decode(nulls).unwrap().is_empty());
        let stop = br#"{"generation":null,"prompt_token_count":null,"generation_token_count":5,"stop_reason":"stop"}"#;
        assert_eq!(Llama.decode(stop).unwrap(), [Event::End("end_turn".into())]);
    }
}
