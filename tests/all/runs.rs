//! Detached runs (seed 003) through the real `streamhost serve`: `202`
//! before the first model event, subscribers that replay, follow live and
//! resume with `Last-Event-ID`, cancel, bounds, owners, sinks (webhooks
//! checked with the Standard Webhooks library), and the DynamoDB store
//! (moto) shared by two hosts and surviving a restart.

use crate::support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::HeaderMap;
use serde_json::{Value, json};
use support::appsync::Simulator;
use support::lambda::{Function, RuntimeApi};
use support::moto::Moto;
use support::runs::{RunEvent, ended, start, status, subscribe, text};
use support::upstream::{SSE, Script, Upstream, sse};
use support::{EXAMPLES, Server, example, fixture, plugin_dir, write_manifest};

const PROMPT: &str = "one two three four five six seven eight nine ten eleven twelve";
const LONG: Duration = Duration::from_secs(30);

/// The events' ids are 1, 2, … with no gap, and the last is `done`.
fn assert_whole(events: &[RunEvent], status: &str) {
    let ids: Vec<u64> = events.iter().map(|event| event.id).collect();
    assert_eq!(ids, (1..=events.len() as u64).collect::<Vec<_>>(), "ids in order, none missing, none twice");
    let last = events.last().unwrap();
    assert_eq!((last.kind.as_str(), &last.data), ("done", &json!({ "status": status })));
}

#[tokio::test]
async fn a_run_answers_202_before_its_first_model_event_and_streams_to_its_subscriber() {
    // At a real model's pace: 300 ms to each token.
    let host = Server::builder().echo_delay_ms(300).start();
    let asked = Instant::now();
    let (code, started, headers) =
        start(&host.base, "redact", &json!({ "prompt": "Tell me a joke" }).to_string()).await;
    let answered = asked.elapsed();
    assert_eq!(code, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(
        started,
        json!({ "id": id, "status": "started", "conversationId": id, "events": format!("/runs/{id}/events") })
    );
    assert_eq!(headers["location"], format!("/runs/{id}"));
    assert_eq!(id.len(), 32, "128 random bits as hex");

    let subscribed = asked.elapsed();
    let events = subscribe(&host.base, &id, None, None).await;
    assert_whole(&events, "completed");
    assert_eq!(text(&events), "Tell me a joke");
    let first_text = events.iter().find(|event| event.kind == "text").unwrap();
    let last_text = events.iter().rev().find(|event| event.kind == "text").unwrap();
    assert!(
        answered < subscribed + first_text.at,
        "202 after {answered:?}; the first token at {:?}",
        subscribed + first_text.at
    );
    assert!(first_text.at + Duration::from_millis(500) < last_text.at, "each token arrives as it is made: {events:?}");

    let record = status(&host.base, &id).await;
    assert_eq!((record["status"].as_str(), record["events"].as_u64()), (Some("completed"), Some(events.len() as u64)));
    assert_eq!(record["usage"], json!({ "inputTokens": 4, "outputTokens": 4, "totalTokens": 8 }));
    assert!(record["createdMs"].as_u64() <= record["endedMs"].as_u64());
    assert!(record.get("owner").is_none(), "the owner is not shown: {record}");
}

#[tokio::test]
async fn a_dropped_subscriber_resumes_with_last_event_id_and_gets_exactly_the_rest() {
    let host = Server::builder().echo_delay_ms(40).start();
    let (_, started, _) = start(&host.base, "redact", &json!({ "prompt": PROMPT }).to_string()).await;
    let id = started["id"].as_str().unwrap();

    // Drops after 4 events, while the run goes on; resumes live.
    let before = subscribe(&host.base, id, None, Some(4)).await;
    let live = status(&host.base, id).await;
    assert_eq!(live["status"], "running", "resumed while the run is still live");
    let unsent = reqwest::Client::new()
        .get(host.url(&format!("/runs/{id}/events")))
        .header("last-event-id", "999")
        .send()
        .await
        .unwrap();
    let expected = json!({ "error": { "code": "invalid_last_event_id", "message": format!("run `{id}` has no event 999: resume from an id it sent") } });
    assert_eq!(support::error_of(unsent).await, (400, expected), "an id the run never sent");
    let after = subscribe(&host.base, id, Some(before.last().unwrap().id), None).await;
    let resumed: Vec<RunEvent> = before.iter().chain(&after).cloned().collect();
    assert_whole(&resumed, "completed");
    assert_eq!(text(&resumed), PROMPT);

    // A replay from the start is the same log; `?lastEventId=` is the
    // header's stand-in for a browser's first connection.
    let replay = subscribe(&host.base, id, None, None).await;
    let strip = |events: &[RunEvent]| {
        events.iter().map(|event| (event.id, event.kind.clone(), event.data.clone())).collect::<Vec<_>>()
    };
    assert_eq!(strip(&replay), strip(&resumed));
    let by_query = reqwest::get(host.url(&format!("/runs/{id}/events?lastEventId=3"))).await.unwrap();
    let by_query = support::runs::read_events(by_query, None).await;
    assert_eq!(strip(&by_query), strip(&replay[3..]));

    // Past the end of a run that has ended: 204, so an EventSource stops.
    let last = replay.last().unwrap().id;
    let response = reqwest::Client::new()
        .get(host.url(&format!("/runs/{id}/events")))
        .header("last-event-id", last.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let response = reqwest::Client::new()
        .get(host.url(&format!("/runs/{id}/events")))
        .header("last-event-id", "x1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        support::error_of(response).await,
        (
            400,
            json!({ "error": { "code": "invalid_last_event_id", "message": "`x1` is not an event id of a run (a sequence number)" } })
        )
    );
}

#[tokio::test]
async fn a_plugin_trap_mid_run_fails_the_run_with_the_error_event_last() {
    let plugins = plugin_dir(&[("trap", &fixture("trap"))]);
    write_manifest(
        plugins.path(),
        "trapping",
        &json!({ "transforms": ["trap"], "config": { "trap": { "trapAt": 3 } } }),
    );
    let host = Server::builder().plugins(plugins.path()).echo_delay_ms(30).start();
    let (_, started, _) = start(&host.base, "trapping", &json!({ "prompt": PROMPT }).to_string()).await;
    let id = started["id"].as_str().unwrap();
    let events = subscribe(&host.base, id, None, None).await;
    assert_whole(&events, "failed");
    assert!(!text(&events).is_empty(), "events before the trap are kept: {events:?}");
    let error = &events[events.len() - 2];
    assert_eq!((error.kind.as_str(), error.data["code"].as_str()), ("error", Some("plugin_trapped")));
    let record = status(&host.base, id).await;
    assert_eq!((record["status"].as_str(), record["error"]["code"].as_str()), (Some("failed"), Some("plugin_trapped")));

    // After a formatter the error event is bytes; the run still failed.
    write_manifest(
        plugins.path(),
        "formatted",
        &json!({ "transforms": ["trap", "ndjson"], "config": { "trap": { "trapAt": 3 } } }),
    );
    std::fs::copy(example("ndjson"), plugins.path().join("ndjson.wasm")).unwrap();
    let (_, started, _) = start(&host.base, "formatted", &json!({ "prompt": PROMPT }).to_string()).await;
    let id = started["id"].as_str().unwrap();
    let events = subscribe(&host.base, id, None, None).await;
    assert_whole(&events, "failed");
    assert!(events.iter().all(|event| event.kind == "raw" || event.kind == "done"), "{events:?}");
    assert_eq!(status(&host.base, id).await["error"]["code"], "plugin_trapped");

    // A plugin that is not there is refused before the run starts, as a
    // stream's is.
    let missing = host.post("/runs/no-such-plugin", r#"{"prompt":"hi"}"#).await;
    missing.assert_error(404, "unknown_plugin", "no plugin named `no-such-plugin`");
}

#[tokio::test]
async fn cancel_ends_the_run_and_closes_its_model_call() {
    let chunk = |text: &str| {
        sse(&json!({ "choices": [{ "index": 0, "delta": { "content": text }, "finish_reason": null }] }).to_string())
    };
    let model = Upstream::start(vec![Script::new(200, SSE).chunks(
        Duration::from_millis(300),
        PROMPT.split(' ').cycle().take(40).map(|word| chunk(&format!("{word} "))),
    )])
    .await;
    let host = Server::builder()
        .arg("--openai-base-url", &format!("{}/v1", model.base))
        .arg("--model", "llama3.2")
        .env([("STREAMHOST_OPENAI_API_KEY", "sk-loopback".to_string())])
        .start();
    let (_, started, _) = start(&host.base, "redact", r#"{"prompt":"Count"}"#).await;
    let id = started["id"].as_str().unwrap();
    let first = subscribe(&host.base, id, None, Some(3)).await;
    assert_eq!(first[1].kind, "text", "{first:?}");
    assert!(first[2].at < Duration::from_secs(3), "the model's tokens arrive as it sends them: {first:?}");

    let response = reqwest::Client::new().delete(host.url(&format!("/runs/{id}"))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let record: Value = response.json().await.unwrap();
    assert_eq!(record["status"], "cancelled", "{record}");
    assert!(model.wait_cut_short(Duration::from_secs(5)).await, "the model server saw its connection closed");
    let events = subscribe(&host.base, id, None, None).await;
    assert_whole(&events, "cancelled");
    assert!(events.len() < 20, "the run stopped at the cancel: {} events", events.len());

    // A cancel at once after the start is not lost.
    let (_, started, _) = start(&host.base, "redact", r#"{"prompt":"Count"}"#).await;
    let id = started["id"].as_str().unwrap();
    let record: Value =
        reqwest::Client::new().delete(host.url(&format!("/runs/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(record["status"], "cancelled", "{record}");

    // Cancelling a run that has ended changes nothing.
    let again: Value =
        reqwest::Client::new().delete(host.url(&format!("/runs/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(again["status"], "cancelled");
}

#[tokio::test]
async fn past_its_bounds_a_run_is_refused_or_ended_never_cut_silently() {
    let host = Server::builder().echo_delay_ms(100).arg("--max-runs", "1").start();
    let (code, _, _) = start(&host.base, "redact", &json!({ "prompt": PROMPT }).to_string()).await;
    assert_eq!(code, 202);
    let response =
        reqwest::Client::new().post(host.url("/runs/redact")).body(r#"{"prompt":"hi"}"#).send().await.unwrap();
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "5", "no run has ended: a guess at when one will");
    assert_eq!(
        support::error_of(response).await,
        (
            429,
            json!({ "error": { "code": "too_many_runs", "message": "this host already has 1 runs under way (--max-runs); try again in 5 s" } })
        )
    );

    let host = Server::builder().echo_delay_ms(300).arg("--max-run-secs", "1").start();
    let (_, started, _) = start(&host.base, "redact", &json!({ "prompt": PROMPT }).to_string()).await;
    let events = subscribe(&host.base, started["id"].as_str().unwrap(), None, None).await;
    assert_whole(&events, "failed");
    assert_eq!(events[events.len() - 2].data["code"], "run_time_limit", "{events:?}");
    assert!(!text(&events).is_empty() && text(&events) != PROMPT, "ended part way: {events:?}");

    let host = Server::builder().arg("--max-run-bytes", "200").start();
    let (_, started, _) = start(&host.base, "redact", &json!({ "prompt": PROMPT.repeat(3) }).to_string()).await;
    let events = subscribe(&host.base, started["id"].as_str().unwrap(), None, None).await;
    assert_whole(&events, "failed");
    let error = &events[events.len() - 2];
    assert_eq!(error.data["code"], "run_too_large", "{events:?}");
    assert!(error.data["message"].as_str().unwrap().contains("200-byte limit"));
}

#[tokio::test]
async fn only_the_caller_who_started_a_run_reads_or_cancels_it() {
    let host = Server::builder().echo_delay_ms(50).start();
    let key = [("x-api-key", "demo-key")];
    let client = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, headers: &[(&str, &str)]| {
        headers
            .iter()
            .fold(client.request(method, host.url(path)), |request, (name, value)| request.header(*name, *value))
    };
    let started: Value = call(reqwest::Method::POST, "/runs/seed001", &key)
        .body(r#"{"prompt":"hi there"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap();

    let mine = call(reqwest::Method::GET, &format!("/runs/{id}"), &key).send().await.unwrap();
    assert_eq!(mine.status(), 200);
    let unknown =
        json!({ "error": { "code": "unknown_run", "message": format!("there is no run `{id}` that you may read") } });
    let basic = format!("Basic {}", base64_of("demo:demo-password"));
    for path in [format!("/runs/{id}"), format!("/runs/{id}/events")] {
        let other = call(reqwest::Method::GET, &path, &[("authorization", &basic)]).send().await.unwrap();
        assert_eq!(support::error_of(other).await, (404, unknown.clone()), "another caller: {path}");
        let nobody = call(reqwest::Method::GET, &path, &[]).send().await.unwrap();
        assert_eq!(nobody.status(), 401, "no credential: the inbound plugin's own refusal");
        assert!(nobody.headers().contains_key("www-authenticate"));
    }
    let cancel =
        call(reqwest::Method::DELETE, &format!("/runs/{id}"), &[("authorization", &basic)]).send().await.unwrap();
    assert_eq!(cancel.status(), 404, "another caller cannot cancel it");
    let events = subscribe_with(&host.url(&format!("/runs/{id}/events")), &key).await;
    assert_whole(&events, "completed");

    let never = "0123456789abcdef0123456789abcdef";
    for (path, shown) in
        [(format!("/runs/{never}"), never), ("/runs/..%2Fx".to_string(), "../x"), ("/runs/abc/events".into(), "abc")]
    {
        let response = client.get(host.url(&path)).send().await.unwrap();
        let expected = json!({ "error": { "code": "unknown_run", "message": format!("there is no run `{shown}` that you may read") } });
        assert_eq!(support::error_of(response).await, (404, expected), "{path}");
    }
    let response = client.put(host.url(&format!("/runs/{id}"))).send().await.unwrap();
    assert_eq!(response.status(), 405);
}

/// A run started by an identified caller is theirs alone, whatever
/// happens to its pipeline after: a read the pipeline cannot identify now
/// (its inbound plugin gone, one that gives no user id, the manifest
/// deleted) is refused as another caller's is, never let through.
#[tokio::test]
async fn a_run_with_an_owner_is_refused_to_a_reader_the_pipeline_cannot_identify_now() {
    let plugins = plugin_dir(&[
        ("seed001-auth", &example("seed001-auth")),
        ("sse-passthrough", &example("sse-passthrough")),
        ("text-only", &example("text-only")),
        ("seed004-tool", &example("seed004-tool")),
        ("redact", &example("redact")),
    ]);
    let seed001: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{EXAMPLES}/seed001.json")).unwrap()).unwrap();
    write_manifest(plugins.path(), "guarded", &seed001);
    let host = Server::builder().plugins(plugins.path()).echo_delay_ms(20).start();
    let client = reqwest::Client::new();
    let key = ("x-api-key", "demo-key");
    let started: Value = client
        .post(host.url("/runs/guarded"))
        .header(key.0, key.1)
        .body(r#"{"prompt":"hi there"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = started["id"].as_str().unwrap();
    let read = |method: reqwest::Method, path: &str, credential: Option<(&str, &str)>| {
        let request = client.request(method, host.url(path));
        match credential {
            Some((name, value)) => request.header(name, value),
            None => request,
        }
    };
    assert_eq!(read(reqwest::Method::GET, &format!("/runs/{id}"), Some(key)).send().await.unwrap().status(), 200);

    let unknown =
        json!({ "error": { "code": "unknown_run", "message": format!("there is no run `{id}` that you may read") } });
    // Each edit as an operator would make it, the plugin's settings with it.
    let mut no_inbound = seed001.clone();
    no_inbound.as_object_mut().unwrap().remove("inbound");
    no_inbound["config"].as_object_mut().unwrap().remove("seed001-auth");
    let mut no_user_id = no_inbound.clone();
    no_user_id["inbound"] = json!("seed004-tool");
    for (edit, manifest) in
        [("no inbound plugin", Some(no_inbound)), ("one that gives no user id", Some(no_user_id)), ("deleted", None)]
    {
        match manifest {
            Some(manifest) => write_manifest(plugins.path(), "guarded", &manifest),
            None => std::fs::remove_file(plugins.path().join("guarded.json")).unwrap(),
        }
        for credential in [Some(key), None] {
            for (method, path) in [
                (reqwest::Method::GET, format!("/runs/{id}")),
                (reqwest::Method::GET, format!("/runs/{id}/events")),
                (reqwest::Method::DELETE, format!("/runs/{id}")),
            ] {
                let response = read(method.clone(), &path, credential).send().await.unwrap();
                assert_eq!(
                    support::error_of(response).await,
                    (404, unknown.clone()),
                    "manifest {edit}: {method} {path} with {credential:?}"
                );
            }
        }
    }

    // A manifest that does not parse is refused as it is, never a pass.
    std::fs::write(plugins.path().join("guarded.json"), "{").unwrap();
    let broken = read(reqwest::Method::GET, &format!("/runs/{id}"), Some(key)).send().await.unwrap();
    assert_eq!(support::error_of(broken).await.1["error"]["code"], "invalid_manifest");

    // The pipeline as it was: the owner reads it again, and it was never
    // cancelled; another identified caller still gets 404.
    write_manifest(plugins.path(), "guarded", &seed001);
    let record: Value =
        read(reqwest::Method::GET, &format!("/runs/{id}"), Some(key)).send().await.unwrap().json().await.unwrap();
    assert_ne!(record["status"], "cancelled", "{record}");
    let basic = format!("Basic {}", base64_of("demo:demo-password"));
    let other = read(reqwest::Method::GET, &format!("/runs/{id}"), Some(("authorization", basic.as_str())))
        .send()
        .await
        .unwrap();
    assert_eq!(support::error_of(other).await, (404, unknown));

    // A run started with no owner stays readable by its id alone.
    let (_, open, _) = start(&host.base, "redact", r#"{"prompt":"hi"}"#).await;
    assert_eq!(ended(&host.base, open["id"].as_str().unwrap(), LONG).await["status"], "completed");
}

/// The issue's flood: one caller's 100 cheap runs at once get its share
/// of `--max-runs` (a tenth), the rest `429` naming the per-caller limit,
/// and another caller still starts runs.
#[tokio::test]
async fn one_caller_gets_its_share_of_the_runs_and_not_the_whole() {
    let host = Server::builder().echo_delay_ms(200).start();
    let long = json!({ "prompt": PROMPT.repeat(20) }).to_string();
    let flood = support::runs::client_from([127, 0, 0, 1]);
    let mut answers = Vec::new();
    for _ in 0..100 {
        let (code, body, headers) = support::runs::start_from(&flood, &host.base, "ndjson", &long).await;
        answers.push((code, body, headers.get("retry-after").map(|value| value.to_str().unwrap().to_string())));
    }
    let started = answers.iter().filter(|(code, ..)| *code == 202).count();
    assert_eq!(started, 10, "a tenth of --max-runs (100)");
    let (code, refusal, retry_after) = &answers[10];
    assert_eq!((*code, retry_after.as_deref()), (429, Some("5")));
    assert_eq!(
        (refusal["error"]["code"].as_str(), refusal["error"]["message"].as_str()),
        (
            Some("too_many_runs"),
            Some(
                "you already have 10 runs under way, the most one caller may have on this host (--max-runs-per-caller); try again in 5 s"
            )
        )
    );
    assert!(answers[10..].iter().all(|(code, ..)| *code == 429));

    for other in [[127, 0, 0, 2], [127, 0, 0, 3]] {
        let (code, body, _) =
            support::runs::start_from(&support::runs::client_from(other), &host.base, "ndjson", &long).await;
        assert_eq!(code, 202, "another caller starts a run: {body}");
    }

    // Set lower, it is that; the message names it.
    let host = Server::builder().echo_delay_ms(200).arg("--max-runs-per-caller", "2").start();
    for _ in 0..2 {
        assert_eq!(support::runs::start_from(&flood, &host.base, "ndjson", &long).await.0, 202);
    }
    let (code, refusal, _) = support::runs::start_from(&flood, &host.base, "ndjson", &long).await;
    assert_eq!(code, 429);
    assert!(refusal["error"]["message"].as_str().unwrap().starts_with("you already have 2 runs under way"));
}

/// The issue's second half: a caller who starts runs as fast as they end
/// fills the store with its ended runs; room for its next comes from its
/// own, and another caller's result waits to be read.
#[tokio::test]
async fn a_flooding_callers_ended_runs_make_room_and_anothers_result_is_kept() {
    let host = Server::builder().arg("--max-runs", "4").arg("--max-runs-per-caller", "2").start();
    let (flood, other) = (support::runs::client_from([127, 0, 0, 1]), support::runs::client_from([127, 0, 0, 2]));
    let (_, result, _) = support::runs::start_from(&other, &host.base, "redact", r#"{"prompt":"keep me"}"#).await;
    let result = result["id"].as_str().unwrap().to_string();
    assert_eq!(ended(&host.base, &result, LONG).await["status"], "completed");
    let mut flooded = Vec::new();
    for n in 0..12 {
        let (code, body, _) = support::runs::start_from(&flood, &host.base, "redact", r#"{"prompt":"again"}"#).await;
        assert_eq!(code, 202, "run {n}: its own ended runs make room: {body}");
        let id = body["id"].as_str().unwrap().to_string();
        ended(&host.base, &id, LONG).await;
        flooded.push(id);
    }
    let events = subscribe(&host.base, &result, None, None).await;
    assert_whole(&events, "completed");
    assert_eq!(text(&events), "keep me", "the other caller's result, read after the flood");
    let gone = reqwest::get(host.url(&format!("/runs/{}", flooded[0]))).await.unwrap();
    assert_eq!(gone.status(), 404, "the flood's oldest made room");
    assert_eq!(reqwest::get(host.url(&format!("/runs/{}", flooded[11]))).await.unwrap().status(), 200);
}

// ---- What callers leave in memory is bounded in bytes ----

/// The issue's input, scaled to a small bound: one-turn conversations of
/// 1 MB each on `/support-desk` keep the latest that fit in
/// `--history-max-bytes`, the least recently used forgotten whole; a turn
/// larger than the bound is kept without its oldest messages, so the
/// conversation still goes on. And a run's record counts against its bytes.
#[tokio::test]
async fn conversations_and_runs_in_memory_are_bounded_in_bytes() {
    let host = Server::builder().arg("--history-max-bytes", &(4 << 20).to_string()).start();
    let megabyte = format!("Where is my order? {}", "x".repeat(1_000_000));
    let turn =
        |session: &str, prompt: &str| json!({ "prompt": prompt, "userId": "ana", "sessionId": session }).to_string();
    for session in 0..6 {
        let lines =
            support::ndjson_lines(&host.post("/support-desk", &turn(&format!("s{session}"), &megabyte)).await.body);
        assert_eq!(
            (lines[0]["data"]["agent"].as_str(), lines.last().unwrap()["type"].as_str()),
            (Some("orders"), Some("complete"))
        );
    }
    let follow_up = |session: &str| {
        let host = &host;
        let body = turn(session, "Thanks!");
        async move { support::ndjson_lines(&host.post("/support-desk", &body).await.body)[0]["data"]["reason"].clone() }
    };
    assert_eq!(follow_up("s5").await, "no keyword; the conversation continues with orders", "the latest is kept");
    assert_eq!(follow_up("s4").await, "no keyword; the conversation continues with orders");
    assert_eq!(follow_up("s0").await, "no keyword matched; the fallback agent", "the least recently used is forgotten");

    // Larger than the bound: the user's megabyte goes, the answer and the
    // agent stay.
    let host = Server::builder().arg("--history-max-bytes", &(256 << 10).to_string()).start();
    let lines = support::ndjson_lines(&host.post("/support-desk", &turn("big", &megabyte)).await.body);
    assert_eq!(lines.last().unwrap()["type"], "complete", "{:?}", lines.last());
    let reason =
        support::ndjson_lines(&host.post("/support-desk", &turn("big", "Thanks!")).await.body)[0]["data"]["reason"]
            .clone();
    assert_eq!(reason, "no keyword; the conversation continues with orders");

    // A run's record is its text too: a session id as long as a body
    // allows counts against --max-run-bytes.
    let host = Server::builder().arg("--max-run-bytes", "65536").start();
    let body = json!({ "prompt": "hi", "sessionId": "s".repeat(100_000) }).to_string();
    let (_, started, _) = start(&host.base, "redact", &body).await;
    let events = subscribe(&host.base, started["id"].as_str().unwrap(), None, None).await;
    assert_whole(&events, "failed");
    let error = &events[events.len() - 2];
    assert_eq!(error.data["code"], "run_too_large", "{events:?}");
    assert!(
        error.data["message"].as_str().unwrap().contains("65536-byte limit (--max-run-bytes: its record and events)")
    );
}

async fn subscribe_with(url: &str, headers: &[(&str, &str)]) -> Vec<RunEvent> {
    let request =
        headers.iter().fold(reqwest::Client::new().get(url), |request, (name, value)| request.header(*name, *value));
    support::runs::read_events(request.send().await.unwrap(), None).await
}

fn base64_of(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}

/// A webhook receiver on loopback: every delivery's headers and body.
struct Receiver {
    url: String,
    deliveries: Arc<Mutex<Vec<(HeaderMap, String)>>>,
}

async fn receiver() -> Receiver {
    let deliveries: Arc<Mutex<Vec<(HeaderMap, String)>>> = Arc::default();
    let kept = deliveries.clone();
    let app = Router::new().fallback(move |headers: HeaderMap, body: String| {
        let kept = kept.clone();
        async move { kept.lock().unwrap().push((headers, body)) }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Receiver { url, deliveries }
}

/// Checks a delivery's signature with the Standard Webhooks reference
/// library for Python, as a receiver would.
fn verified_by_standard_webhooks(secret: &str, headers: &HeaderMap, body: &str) -> bool {
    let header = |name: &str| headers[name].to_str().unwrap().to_string();
    let script = "import sys, json\nfrom standardwebhooks.webhooks import Webhook\nWebhook(sys.argv[1]).verify(sys.stdin.read(), json.loads(sys.argv[2]))";
    let signed = json!({ "webhook-id": header("webhook-id"), "webhook-timestamp": header("webhook-timestamp"), "webhook-signature": header("webhook-signature") });
    let mut child = std::process::Command::new("python3")
        .args(["-c", script, secret, &signed.to_string()])
        .stdin(std::process::Stdio::piped())
        // A signature that does not match raises: the answer is the exit status.
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("python3 runs");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    child.wait().unwrap().success()
}

#[tokio::test]
async fn sinks_deliver_every_event_and_one_that_is_down_stops_neither_the_run_nor_the_others() {
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const TEXTS_SECRET: &str = "dGV4dHMgb25seQ==";
    let up = receiver().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = format!("http://{}/hook", closed.local_addr().unwrap());
    drop(closed);
    let plugins = plugin_dir(&[("redact", &example("redact"))]);
    write_manifest(
        plugins.path(),
        "hooked",
        &json!({
            "transforms": ["redact"],
            "sinks": {
                "audit": { "type": "webhook", "url": up.url },
                "texts": { "type": "webhook", "url": up.url, "events": ["text"], "secret": TEXTS_SECRET },
                "gone": { "type": "webhook", "url": down },
            }
        }),
    );
    write_manifest(
        plugins.path(),
        "misspelt",
        &json!({ "sinks": { "audit": { "type": "webhook", "url": up.url, "events": ["txt"] } } }),
    );
    let host = Server::builder()
        .plugins(plugins.path())
        .echo_delay_ms(20)
        .arg("--webhook-secret", SECRET)
        .arg("--sink-retries", "2")
        .start();
    let misspelt = host.post("/runs/misspelt", r#"{"prompt":"hi"}"#).await;
    let message = "the pipeline manifest `misspelt.json` is invalid: sink `audit`: `txt` is not an event type of a run (one of metadata, text, status, usage, end, error, frame, raw, done)";
    misspelt.assert_error(500, "invalid_manifest", message);
    write_manifest(
        plugins.path(),
        "unsigned",
        &json!({ "sinks": { "audit": { "type": "webhook", "url": up.url, "secret": "not base64!" } } }),
    );
    let unsigned = host.post("/runs/unsigned", r#"{"prompt":"hi"}"#).await;
    assert_eq!(
        (unsigned.status, unsigned.body.contains("sink `audit`: the webhook secret is not base64")),
        (500, true),
        "{unsigned:?}"
    );
    let (_, started, _) = start(&host.base, "hooked", &json!({ "prompt": PROMPT }).to_string()).await;
    let id = started["id"].as_str().unwrap();
    let events = subscribe(&host.base, id, None, None).await;
    assert_whole(&events, "completed");

    // The sinks finish after the run: wait for their status.
    let deadline = Instant::now() + LONG;
    let record = loop {
        let record = status(&host.base, id).await;
        let settled = record["sinks"].as_object().unwrap().values().all(|sink| sink["state"] != "delivering");
        if settled || Instant::now() > deadline {
            break record;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(record["status"], "completed", "a sink that is down does not fail the run");
    let last = events.len() as u64;
    assert_eq!(
        (record["sinks"]["audit"]["state"].as_str(), record["sinks"]["audit"]["acknowledged"].as_u64()),
        (Some("done"), Some(last))
    );
    assert_eq!(record["sinks"]["texts"]["state"], "done");
    let gone = &record["sinks"]["gone"];
    assert_eq!(
        (gone["state"].as_str(), gone["acknowledged"].as_u64(), gone["failures"].as_u64()),
        (Some("failed"), Some(0), Some(3)),
        "{gone}"
    );
    assert!(gone["lastError"].as_str().unwrap().contains("could not be reached"), "{gone}");

    let deliveries = up.deliveries.lock().unwrap().clone();
    let mut audit = Vec::new();
    let mut texts = Vec::new();
    for (headers, body) in &deliveries {
        let delivery: Value = serde_json::from_str(body).unwrap();
        assert_eq!((delivery["runId"].as_str(), delivery["conversationId"].as_str()), (Some(id), Some(id)));
        let kinds: Vec<&str> =
            delivery["events"].as_array().unwrap().iter().map(|event| event["type"].as_str().unwrap()).collect();
        if kinds.iter().all(|kind| *kind == "text") && verified_by_standard_webhooks(TEXTS_SECRET, headers, body) {
            texts.extend(delivery["events"].as_array().unwrap().clone());
        } else {
            assert!(verified_by_standard_webhooks(SECRET, headers, body), "signed with the host's secret: {body}");
            audit.extend(delivery["events"].as_array().unwrap().clone());
        }
    }
    let seqs: Vec<u64> = audit.iter().map(|event| event["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "every event once, in order");
    let delivered: String = texts.iter().map(|event| event["data"].as_str().unwrap()).collect();
    assert_eq!(delivered, PROMPT);
    assert!(!verified_by_standard_webhooks("whsec_b3RoZXI=", &deliveries[0].0, &deliveries[0].1), "the check can fail");
}

#[tokio::test]
async fn in_dynamodb_a_run_is_followed_from_another_host_and_resumed_after_a_restart() {
    let moto = Moto::start().await;
    moto.create_runs_table("runs").await;
    let host = |delay| {
        Server::builder()
            .env(moto.env())
            .arg("--runs-table", "runs")
            .arg("--run-poll-ms", "20")
            .echo_delay_ms(delay)
            .start()
    };
    let driving = host(60);
    let watching = host(0);
    let (_, started, _) = start(&driving.base, "redact", &json!({ "prompt": PROMPT }).to_string()).await;
    let id = started["id"].as_str().unwrap().to_string();

    // Another host serves the subscriber, live, from the table.
    let first = subscribe(&watching.base, &id, None, Some(4)).await;
    assert_eq!(status(&watching.base, &id).await["status"], "running");
    let driven = ended(&driving.base, &id, LONG).await;
    assert_eq!(driven["status"], "completed");
    drop(driving);
    drop(watching);

    // A new host on the same table: the rest, exactly, after the restart.
    let restarted = host(0);
    let rest = subscribe(&restarted.base, &id, Some(first.last().unwrap().id), None).await;
    let whole: Vec<RunEvent> = first.iter().chain(&rest).cloned().collect();
    assert_whole(&whole, "completed");
    assert_eq!(text(&whole), PROMPT);
    let record = status(&restarted.base, &id).await;
    assert_eq!((record["status"].as_str(), record["events"].as_u64()), (Some("completed"), Some(whole.len() as u64)));
    assert_eq!(record, driven, "the record, as the host that drove it saw it");

    // Cancel from a host that is not driving the run: through the table.
    let driving = host(200);
    let other = host(0);
    let (_, started, _) = start(&driving.base, "redact", &json!({ "prompt": PROMPT }).to_string()).await;
    let id = started["id"].as_str().unwrap();
    subscribe(&other.base, id, None, Some(2)).await;
    let cancelled: Value =
        reqwest::Client::new().delete(other.url(&format!("/runs/{id}"))).send().await.unwrap().json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert_whole(&subscribe(&other.base, id, None, None).await, "cancelled");
}

// ---- On Lambda, through the Runtime API emulator ----

#[tokio::test]
async fn on_lambda_a_run_answers_202_at_once_and_an_asynchronous_invocation_carries_it() {
    let moto = Moto::start().await;
    moto.create_runs_table("runs").await;
    let api = Arc::new(RuntimeApi::start().await);
    let env = || {
        let mut env = moto.env();
        env.extend([("STREAMHOST_RUNS_TABLE", "runs".to_string()), ("STREAMHOST_RUN_POLL_MS", "20".to_string())]);
        env
    };
    // Two execution environments: one drives the run, the other serves
    // the subscriber, both from the table.
    let _first = Function::start_with(&api, EXAMPLES, 200, env());
    let _second = Function::start_with(&api, EXAMPLES, 200, env());
    let url = api.function_url(None).await;

    let asked = Instant::now();
    let (code, started, _) =
        start(&url.url, "seed003", r#"{"conversationId":"c-9","prompt":"Why do atoms lie"}"#).await;
    let answered = asked.elapsed();
    assert_eq!(code, 202, "{started}");
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!((started["status"].as_str(), started["conversationId"].as_str()), (Some("started"), Some("c-9")));

    let [(function, payload)] = &api.invoked()[..] else { panic!("one asynchronous invocation: {:?}", api.invoked()) };
    assert_eq!(
        function, "arn:aws:lambda:us-east-1:123456789012:function:streamhost",
        "the function invokes itself, by the ARN it was invoked by"
    );
    assert_eq!(payload["streamhostRun"]["runId"], id.as_str());
    let fields: Vec<&String> = payload["streamhostRun"].as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        ["runId", "target", "query", "body", "chain"],
        "the mapped request only: no headers, no credentials"
    );

    let subscribed = asked.elapsed();
    let events = subscribe(&url.url, &id, None, None).await;
    assert_whole(&events, "completed");
    assert_eq!(text(&events), "Why do atoms lie");
    let first_text = subscribed + events.iter().find(|event| event.kind == "text").unwrap().at;
    assert!(answered < first_text, "202 after {answered:?}; the first model event at {first_text:?}");

    let answers = api.wait_answered(1, LONG).await;
    assert_eq!(answers, [json!({ "id": id, "status": "completed" })]);
    let record = status(&url.url, &id).await;
    assert_eq!(record["status"], "completed");
    assert_eq!(
        record["sinks"]["chunks"]["state"], "failed",
        "no AppSync API is configured: said, not hidden: {record}"
    );
}

#[tokio::test]
async fn seed003s_client_gets_its_chunks_through_appsync_and_the_function_in_event_mode() {
    let api = RuntimeApi::start().await;
    let appsync = Simulator::start(&format!("http://{}", api.address), "streamhost");
    // The function signs its mutations with SigV4 (the simulator takes any
    // well-formed signature; see appsync/README.md).
    let mut env = support::loopback_aws_env();
    env.extend([
        ("STREAMHOST_APPSYNC_URL", appsync.graphql_url.clone()),
        ("STREAMHOST_APPSYNC_PIPELINE", "seed003".into()),
    ]);
    let _function = Function::start_with(&api, EXAMPLES, 150, env);

    let prompt = "Why dont scientists trust atoms";
    let lines =
        appsync.seed003_client("123e4567-e89b-12d3-a456-426614174000", prompt, Duration::from_millis(1500)).await;
    assert_eq!(lines[0].1, json!({ "subscribed": true }));
    let started = lines.iter().find(|(_, line)| line.get("started").is_some()).expect("the start's answer");
    assert_eq!(
        started.1["started"],
        json!({ "conversationId": "123e4567-e89b-12d3-a456-426614174000", "status": "STARTED" })
    );
    let chunks: Vec<&(Duration, Value)> = lines.iter().filter(|(_, line)| line.get("chunk").is_some()).collect();
    assert!(chunks.iter().all(|(_, line)| line["chunk"]["conversationId"] == "123e4567-e89b-12d3-a456-426614174000"));
    let received: String = chunks.iter().map(|(_, line)| line["chunk"]["chunk"].as_str().unwrap()).collect();
    assert_eq!(received, prompt);
    let (first, last) = (chunks[0].0, chunks[chunks.len() - 1].0);
    assert!(first + Duration::from_millis(400) < last, "each chunk is pushed as it is made: {chunks:?}");

    // AppSync invoked the function in Event mode with its resolver's event.
    let [(_, event)] = &api.invoked()[..] else { panic!("one invocation") };
    assert_eq!(event["info"]["fieldName"], "startConversation");
    let answers = api.wait_answered(1, LONG).await;
    assert_eq!(
        (answers[0]["conversationId"].as_str(), answers[0]["status"].as_str()),
        (Some("123e4567-e89b-12d3-a456-426614174000"), Some("completed"))
    );

    // With the API key, which the schema does not let publish chunks,
    // AppSync answers 200 with GraphQL errors: a failed delivery, said in
    // the run's status, and the run itself completes.
    let host = Server::builder()
        .arg("--appsync-url", &appsync.graphql_url)
        .arg("--appsync-api-key", &appsync.api_key)
        .arg("--sink-retries", "1")
        .start();
    let (_, started, _) = start(&host.base, "seed003", r#"{"conversationId":"c-2","prompt":"hi there"}"#).await;
    let id = started["id"].as_str().unwrap();
    assert_whole(&subscribe(&host.base, id, None, None).await, "completed");
    let deadline = Instant::now() + LONG;
    let sink = loop {
        let sink = status(&host.base, id).await["sinks"]["chunks"].clone();
        if sink["state"] != "delivering" || Instant::now() > deadline {
            break sink;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // Event 1, the metadata, is not one the sink sends: done with; event 2,
    // the first chunk, was refused twice.
    assert_eq!(
        (sink["state"].as_str(), sink["acknowledged"].as_u64(), sink["failures"].as_u64()),
        (Some("failed"), Some(1), Some(2)),
        "{sink}"
    );
    assert!(sink["lastError"].as_str().unwrap().contains("Not Authorized to access sendChunk"), "{sink}");
}
