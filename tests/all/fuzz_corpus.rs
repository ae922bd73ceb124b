//! Replays each fuzz target's corpus (`fuzz/corpus/<target>/`: the inputs
//! cargo-fuzz kept from its long runs, minimized, and every crash it found
//! as a file of its own) through the very functions libFuzzer ran
//! (`streamhost::fuzzing`), on stable, in seconds.

use std::path::Path;

use streamhost::fuzzing::{self, TransformTarget};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus");

/// Every input of `target`'s corpus.
fn inputs(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(CORPUS).join(target);
    let inputs: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| std::fs::read(entry.unwrap().path()).unwrap())
        .collect();
    assert!(inputs.len() >= 3, "{target}'s corpus is there");
    inputs
}

#[test]
fn request_json_corpus() {
    inputs("request_json").iter().for_each(|input| fuzzing::request_json(input));
}

#[test]
fn manifest_corpus() {
    inputs("manifest").iter().for_each(|input| fuzzing::manifest(input));
}

#[test]
fn sse_frames_corpus() {
    inputs("sse_frames").iter().for_each(|input| fuzzing::sse_frames(input));
}

#[test]
fn transforms_corpus() {
    let target = TransformTarget::new(Path::new(streamhost_artifacts::EXAMPLES_DIR));
    assert!(target.names().len() >= 10, "the bundled transforms: {:?}", target.names());
    inputs("transforms").iter().for_each(|input| target.run(input));
}
