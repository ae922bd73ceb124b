//! The host's modules in layers: each depends only on the modules listed
//! before it, so the graph has no cycles and a change finds its room by the
//! data flow. The test below reads the sources and holds every module to
//! this order; a new module takes its place here.
//!
//! The one exception is `wit`: `bindgen!` maps the contract's resources to
//! the registry's types (`with:`), so the generated bindings and the
//! registry name each other.

/// Bottom to top. A module may use the modules before it, never those
/// after it.
const LAYERS: &[&str] = &[
    // Leaves: ids, log escaping, the error table, AWS clients, wasmtime's
    // configuration, where plugins come from.
    "request_id",
    "log_text",
    "error_code",
    "aws",
    "engine",
    "plugin_store",
    // The contract and the data that flows through it.
    "wit",
    "event",
    "telemetry",
    // Compiled, linked plugins; conversations; model sources; history.
    "registry",
    "conversation",
    "providers",
    "history",
    // A caller's request, what callers may set, named pipelines.
    "request",
    "callers",
    "manifest",
    // The pipeline (inbound step, route, source, transforms), detached runs.
    "pipeline",
    "runs",
    // Settings of the whole host, and what is built on all of the above.
    "config",
    "assemble",
    "publish",
    "fuzzing",
    "frontends",
    "authoring",
];

/// The modules whose generated code names modules after them.
const GENERATED: &[&str] = &["wit"];

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::{GENERATED, LAYERS};

    /// The top-level modules `source` names as `crate::name`, outside
    /// comments and its `#[cfg(test)]` module.
    fn uses(source: &str) -> Vec<String> {
        let code = source.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        let mut found = Vec::new();
        for line in code.lines() {
            let line = line.split("//").next().unwrap_or_default();
            for (at, _) in line.match_indices("crate::") {
                let name: String = line[at + "crate::".len()..]
                    .chars()
                    .take_while(|char| char.is_ascii_alphanumeric() || *char == '_')
                    .collect();
                found.push(name);
            }
        }
        found
    }

    /// Every `.rs` file of `src/`, by the top-level module it belongs to.
    fn sources() -> BTreeMap<String, Vec<(String, String)>> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut modules: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        let mut folders = vec![root.clone()];
        while let Some(folder) = folders.pop() {
            for entry in std::fs::read_dir(&folder).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    folders.push(path);
                    continue;
                }
                let relative = path.strip_prefix(&root).unwrap().to_string_lossy().into_owned();
                let top = relative.split('/').next().unwrap().trim_end_matches(".rs").to_string();
                if path.extension().is_some_and(|extension| extension == "rs") {
                    modules.entry(top).or_default().push((relative, std::fs::read_to_string(&path).unwrap()));
                }
            }
        }
        modules
    }

    #[test]
    fn every_module_uses_only_the_layers_below_it() {
        let layer = |name: &str| LAYERS.iter().position(|listed| *listed == name);
        let mut wrong = Vec::new();
        for (module, files) in sources() {
            if ["lib", "main", "layers"].contains(&module.as_str()) {
                continue;
            }
            let Some(own) = layer(&module) else {
                wrong.push(format!("`{module}` is not in layers.rs's LAYERS: give it its place"));
                continue;
            };
            for (file, source) in files {
                for used in uses(&source) {
                    let allowed = used == module
                        || GENERATED.contains(&module.as_str())
                        || layer(&used).is_some_and(|below| below < own);
                    if !allowed {
                        wrong.push(format!("{file} uses `crate::{used}`, which is not below `{module}`"));
                    }
                }
            }
        }
        wrong.sort();
        wrong.dedup();
        assert!(wrong.is_empty(), "the module layers are broken:\n{}", wrong.join("\n"));
    }

    /// The Layout block of `docs/layout.md` lists every module of `src/` (in
    /// the order of the layers) and every top-level folder of the repository.
    #[test]
    fn the_layout_doc_is_the_tree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let doc = std::fs::read_to_string(root.join("docs/layout.md")).unwrap();
        let layout = doc.split("## Layout\n\n```\n").nth(1).and_then(|rest| rest.split("```").next()).unwrap();
        let listed: Vec<&str> = layout
            .lines()
            .filter_map(|line| line.trim_start().strip_prefix("src/"))
            .filter_map(|entry| entry.split([' ', '/', '.']).next())
            .collect();
        let in_layers: Vec<&str> = LAYERS.to_vec();
        assert_eq!(listed, in_layers, "docs/layout.md must list host/src's modules in the order of layers.rs");
        let mut missing = Vec::new();
        for entry in std::fs::read_dir(&root).unwrap().map(|entry| entry.unwrap().path()) {
            let name = entry.file_name().unwrap().to_string_lossy().into_owned();
            let ignored = name.starts_with('.') || name == "target";
            if entry.is_dir() && !ignored && !layout.lines().any(|line| line.starts_with(&format!("{name}/"))) {
                missing.push(name);
            }
        }
        assert!(missing.is_empty(), "docs/layout.md's Layout leaves out {missing:?}");
    }

    /// `plugins/README.md`'s table names exactly the plugins the build bundles:
    /// the `plugins/*` folders that are members of the workspace (the build
    /// script compiles those; the others are built by their own `build.sh`).
    #[test]
    fn plugin_table_is_what_ships() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let readme = std::fs::read_to_string(root.join("plugins/README.md")).unwrap();
        let table = readme.split("| plugin | what it does |\n").nth(1).expect("plugins/README.md has its plugin table");
        let mut listed: Vec<String> = Vec::new();
        for row in table.lines().skip(1).take_while(|line| line.starts_with('|')) {
            let first_cell = row.split('|').nth(1).unwrap_or_default();
            for piece in first_cell.split("[`").skip(1) {
                listed.push(piece.split("`]").next().unwrap_or_default().to_string());
            }
        }
        listed.sort();
        let cargo = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
        let mut members: Vec<String> = cargo
            .lines()
            .filter_map(|line| line.trim().strip_prefix("\"plugins/"))
            .map(|rest| rest.trim_end_matches(',').trim_end_matches('"').to_string())
            .collect();
        members.sort();
        assert!(!members.is_empty(), "no `plugins/*` members found in the root Cargo.toml");
        assert_eq!(listed, members, "plugins/README.md's table must list the plugins/* members of the workspace");
    }

    #[test]
    fn a_use_of_a_higher_layer_is_found() {
        assert_eq!(
            uses("use crate::pipeline::Pipeline; // crate::runs\nfn f() { crate::aws::load() }"),
            ["pipeline", "aws"]
        );
        assert!(uses("fn f() {}\n#[cfg(test)]\nmod tests { use crate::runs; }").is_empty());
    }
}
