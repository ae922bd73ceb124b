//! Example plugins written in other languages than Rust, built by their own
//! `build.sh` (each names its toolchain: componentize-py, ...). `.ci/run`
//! installs the toolchains; a build runs again only when a source file in
//! the plugin's folder or the WIT is newer than the component.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::SystemTime;

/// Builds run one at a time: tests of one binary share the outputs.
static BUILDING: Mutex<()> = Mutex::new(());

/// The component of `plugins/<name>`, built if missing or stale.
pub fn component(name: &str) -> PathBuf {
    let root = Path::new(super::REPOSITORY);
    let source = root.join("plugins").join(name);
    let out = super::tmp_dir().join("polyglot").join(format!("{name}.wasm"));
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if newest(&source).max(newest(&root.join("wit"))) <= modified(&out) {
        return out;
    }
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let status = Command::new("bash").arg(source.join("build.sh")).arg(&out).status().expect("bash runs");
    assert!(
        status.success(),
        "building plugins/{name} failed ({status}); its README says what it needs (`.ci/run` installs it)"
    );
    out
}

fn modified(path: &Path) -> SystemTime {
    path.metadata().and_then(|metadata| metadata.modified()).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// The newest modification time of the files under `dir`, skipping what
/// builds leave there.
fn newest(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if matches!(name.as_ref(), "node_modules" | "__pycache__" | "target" | "build") || name.ends_with(".wasm") {
            continue;
        }
        newest = newest.max(if path.is_dir() { self::newest(&path) } else { modified(&path) });
    }
    newest
}

/// Runs `build` while no other build of these tests runs: builds of other
/// languages' toolchains each use both cores.
pub fn one_at_a_time<T>(build: impl FnOnce() -> T) -> T {
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    build()
}

/// `tools/wit-c`, built for the C plugins' `build.sh` (their `WIT_C`), in
/// the tests' own target directory (the parent of [`super::profile_dir`]).
pub fn wit_c() -> PathBuf {
    let root = Path::new(super::REPOSITORY);
    let target = super::profile_dir().parent().expect("a profile folder is in the target directory").to_path_buf();
    one_at_a_time(|| {
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--release", "-p", "wit-c", "--manifest-path"])
            .arg(root.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building tools/wit-c failed");
    });
    target.join("release").join("wit-c")
}
