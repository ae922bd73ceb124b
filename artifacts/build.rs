//! Builds every plugin under `plugins/` and `tests/fixtures/` for
//! wasm32-wasip2, as wasmtime's test-programs-artifacts does, so that
//! `cargo run` and `cargo test` need no manual step.
//!
//! The plugins are members of the same workspace (same Cargo.lock) but are
//! built by a nested cargo into a target directory of their own: the outer
//! build holds the lock on its own.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "plugin";

struct Plugin {
    /// The plugin's name: its folder's name, and the `.wasm` file's.
    name: String,
    package: String,
    /// `examples` or `fixtures`.
    group: &'static str,
}

fn main() {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    for watched in ["wit", "guest-sdk", "plugins", "pipelines", "tests/fixtures", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }

    let mut plugins = discover(&root.join("plugins"), "examples");
    plugins.extend(discover(&root.join("tests/fixtures"), "fixtures"));
    let wasm_dir = build(&root, &out_dir, &plugins);

    for group in ["examples", "fixtures"] {
        let dir = out_dir.join(group);
        fs::create_dir_all(&dir).unwrap();
        let mut names = Vec::new();
        for plugin in plugins.iter().filter(|plugin| plugin.group == group) {
            let built = wasm_dir.join(format!("{}.wasm", plugin.package.replace('-', "_")));
            copy_if_changed(&built, &dir.join(format!("{}.wasm", plugin.name)));
            names.push(plugin.name.clone());
        }
        // The example pipeline manifests sit beside the example plugins.
        if group == "examples" {
            for manifest in manifests(&root.join("pipelines")) {
                let name = manifest.file_stem().unwrap().to_str().unwrap().to_string();
                copy_if_changed(&manifest, &dir.join(format!("{name}.json")));
                names.push(name);
            }
        }
        remove_unlisted(&dir, &names);
        let var = format!("STREAMHOST_{}_DIR", group.to_uppercase());
        println!("cargo:rustc-env={var}={}", dir.display());
    }
}

/// Removes the plugins and manifests that no longer exist (renamed or
/// deleted), so the folder serves exactly those of the source tree.
fn remove_unlisted(dir: &Path, names: &[String]) {
    for entry in fs::read_dir(dir).unwrap().map(Result::unwrap) {
        let path = entry.path();
        let name = path.file_stem().and_then(|stem| stem.to_str()).unwrap_or_default();
        if !names.iter().any(|listed| listed == name) {
            fs::remove_file(&path).unwrap();
        }
    }
}

/// The `.json` files in `dir`.
fn manifests(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
                .collect()
        })
        .unwrap_or_default();
    found.sort();
    found
}

/// Every folder below `dir` with a Cargo.toml is a plugin.
fn discover(dir: &Path, group: &'static str) -> Vec<Plugin> {
    let mut plugins: Vec<Plugin> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|entry| {
            let path = entry.unwrap().path();
            let manifest = fs::read_to_string(path.join("Cargo.toml")).ok()?;
            let package = manifest.lines().find_map(|line| line.strip_prefix("name = "))?.trim_matches('"').to_string();
            let name = path.file_name()?.to_str()?.to_string();
            Some(Plugin { name, package, group })
        })
        .collect();
    plugins.sort_by(|a, b| a.name.cmp(&b.name));
    plugins
}

/// Runs the nested cargo and returns the folder holding the `.wasm` files.
fn build(root: &Path, out_dir: &Path, plugins: &[Plugin]) -> PathBuf {
    // Beside the outer target's own profile folders, so every outer profile
    // shares one wasm build.
    let target_dir = out_dir.ancestors().nth(4).unwrap_or(out_dir).join("wasm-plugins");
    let cargo = env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["build", "--target", TARGET, "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    for plugin in plugins {
        command.args(["-p", &plugin.package]);
    }
    // The outer build's flags are for the host, not for wasm.
    for var in ["CARGO_ENCODED_RUSTFLAGS", "RUSTFLAGS", "CARGO_BUILD_TARGET", "CARGO_TARGET_DIR"] {
        command.env_remove(var);
    }
    let status = command.status().expect("cargo runs");
    if !status.success() {
        panic!(
            "building the plugins for {TARGET} failed (see above). If the target is missing, \
             run `rustup target add {TARGET}` or `rustup toolchain install` in the repository."
        );
    }
    target_dir.join(TARGET).join(PROFILE)
}

/// Keeps the copy's modification time when nothing changed, so a running
/// `streamhost serve` does not see a new plugin on every build.
fn copy_if_changed(from: &Path, to: &Path) {
    let new = fs::read(from).unwrap_or_else(|error| panic!("{}: {error}", from.display()));
    if fs::read(to).ok().as_deref() != Some(&new[..]) {
        fs::write(to, new).unwrap();
    }
}
