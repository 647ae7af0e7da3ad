//! The host's layers, kept by the compiler and by this test. The lower four
//! layers are crates of their own: the foundations (`host/foundations`),
//! storage (`host/storage`), the plugin runtime (`host/runtime`) and the core
//! (`host/core`); Cargo refuses an import from any of them into a layer
//! above. Above them, the `malipo` crate's modules (the host's own
//! operations, the channels, the wiring) each belong to one layer (the table
//! below, also in docs/ARCHITECTURE.md), and no module imports from a layer
//! above its own. Storage and the runtime declare no HTTP dependency and the
//! core none on axum, so none can name what they must know nothing of; each
//! lower crate depends only on the ones below it; no ring of modules
//! importing each other, in any of the crates, is wider than [`MAX_RING`]. A
//! new module of `host/src` fails this test until it is placed in the table.
//!
//! The reading is textual (`crate::`/`super::`/`self::` paths outside test
//! code and comments; `mod` declarations are not imports), as cheap as a
//! unit test and strict enough to catch a wrong-way import the day it is
//! written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The layers, bottom to top. A module may import from its own layer and
/// the ones below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Layer {
    /// Ids, errors, time, configuration, crypto, the outbound client, metrics.
    Foundations,
    /// `control.db`, tenant files, the audit chain's storage.
    Storage,
    /// The WebAssembly plugin runtime.
    Runtime,
    /// Operations and the one pipeline they run through; authz, guardrails,
    /// approvals, metering, billing's gate, events, jobs.
    Core,
    /// The host's own operations, one module per resource.
    Features,
    /// REST, MCP, callbacks, the dashboard, operator routes, the CLI.
    Channels,
    /// Wiring.
    App,
}

use Layer::*;

/// The crates below `malipo`, each one layer: its directory under `host/`,
/// its layer, and the dependencies it must not declare.
const LOWER_CRATES: &[(&str, Layer, &[&str])] = &[
    // Foundations' `ApiError` answers itself as an HTTP response (axum).
    ("foundations", Foundations, &[]),
    ("storage", Storage, HTTP_CRATES),
    ("runtime", Runtime, HTTP_CRATES),
    // The core speaks status codes and headers (the `http` types crate) but
    // knows nothing of axum, of serving, or of MCP.
    (
        "core",
        Core,
        &["axum", "hyper", "tower", "tower-http", "rmcp", "reqwest"],
    ),
];

/// Dependencies that serve or speak HTTP requests.
const HTTP_CRATES: &[&str] = &[
    "axum",
    "hyper",
    "http",
    "tower",
    "tower-http",
    "rmcp",
    "reqwest",
];

/// Module path prefix → layer for the `malipo` crate's own modules (the
/// lower crates' modules are re-exported under their old paths and need no
/// row: the compiler keeps them); the longest matching prefix wins.
const LAYERS: &[(&str, Layer)] = &[
    // A feature's folder: its `mod.rs` re-exports the core's service and
    // holds its operations.
    ("alerts", Features),
    ("approvals", Features),
    ("billing", Features),
    ("deletion", Features),
    ("resources", Features),
    ("platform_mail", Features),
    ("rest", Channels),
    ("mcp", Channels),
    ("callbacks", Channels),
    ("dashboard", Channels),
    ("ops", Channels),
    ("cli", Channels),
    ("app", App),
];

/// The widest ring of modules allowed to import each other (within one
/// layer: a ring across layers is already an upward import).
const MAX_RING: usize = 3;

fn layer_of(module: &str) -> Option<Layer> {
    LAYERS
        .iter()
        .filter(|(prefix, _)| module == *prefix || module.starts_with(&format!("{prefix}::")))
        .max_by_key(|(prefix, _)| prefix.len())
        .map(|(_, layer)| *layer)
}

fn host_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every module of the `malipo` library.
fn modules() -> BTreeMap<String, String> {
    modules_of(&host_dir().join("src"))
}

/// Every module of the library under `root`: path → source without test
/// code and comments.
fn modules_of(root: &Path) -> BTreeMap<String, String> {
    let mut found = BTreeMap::new();
    let root = root.to_path_buf();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                // The binary's own modules (`main.rs`, `commands/`) are the
                // CLI channel of another crate; they reach the library only
                // through its public paths.
                if path.file_name().is_some_and(|n| n == "commands") {
                    continue;
                }
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let relative = path.strip_prefix(&root).expect("under src");
                let mut parts: Vec<String> = relative
                    .with_extension("")
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|p| p == "mod") {
                    parts.pop();
                }
                if parts == ["lib"] || parts == ["main"] {
                    continue;
                }
                let text = std::fs::read_to_string(&path).expect("read module");
                found.insert(parts.join("::"), code_only(&text));
            }
        }
    }
    found
}

/// The text before the first `#[cfg(test)]`, with `//` comments removed.
fn code_only(text: &str) -> String {
    let code = text.split("#[cfg(test)]").next().unwrap_or("");
    code.lines()
        .map(|line| match line.find("//") {
            // A `//` inside a string (a URL) is kept: only a `//` with an
            // even number of quotes before it starts a comment.
            Some(at) if line[..at].matches('"').count() % 2 == 0 => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The module paths `code` of `module` names, resolved against `known`.
fn imports(module: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let here: Vec<&str> = module.split("::").collect();
    let mut out = BTreeSet::new();
    let chars: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let starts_word = i == 0 || !(is_ident(chars[i - 1]) || chars[i - 1] == ':');
        let rest: String = chars[i..chars.len().min(i + 7)].iter().collect();
        let root = ["crate::", "super::", "self::"]
            .into_iter()
            .find(|r| rest.starts_with(r));
        let (Some(root), true) = (root, starts_word) else {
            i += 1;
            continue;
        };
        // The path: `root` then `ident::ident::…` or a `{…}` group.
        let mut j = i + root.len();
        let mut text = String::new();
        let mut depth = 0;
        while j < chars.len() {
            let c = chars[j];
            if c == '{' {
                depth += 1;
            } else if c == '}' {
                if depth == 0 {
                    break;
                }
                depth -= 1;
            } else if depth == 0 && !(is_ident(c) || c == ':') {
                break;
            }
            text.push(c);
            j += 1;
        }
        let base: Vec<String> = match root {
            "crate::" => vec![],
            "super::" => here[..here.len().saturating_sub(1)]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            _ => here.iter().map(|s| s.to_string()).collect(),
        };
        for path in expand(&text) {
            let mut full = base.clone();
            for segment in path.split("::").filter(|s| !s.is_empty()) {
                if segment == "super" {
                    full.pop();
                } else {
                    full.push(segment.trim().to_string());
                }
            }
            for k in (1..=full.len()).rev() {
                let candidate = full[..k].join("::");
                if known.contains(&candidate) {
                    if candidate != module {
                        out.insert(candidate);
                    }
                    break;
                }
            }
        }
        i = j.max(i + 1);
    }
    out
}

/// `a::{b, c::{d}}` → `a::b`, `a::c::d`.
fn expand(text: &str) -> Vec<String> {
    let Some(open) = text.find('{') else {
        return vec![text.split(" as ").next().unwrap_or("").trim().to_string()];
    };
    let head = &text[..open];
    let inner = &text[open + 1..text.rfind('}').unwrap_or(text.len())];
    let mut parts = Vec::new();
    let (mut depth, mut current) = (0, String::new());
    for c in inner.chars() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(std::mem::take(&mut current));
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    parts.push(current);
    parts
        .iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(|p| expand(p.trim()))
        .map(|p| {
            if p == "self" {
                head.to_string()
            } else {
                format!("{head}{p}")
            }
        })
        .collect()
}

fn graph() -> (BTreeMap<String, String>, BTreeMap<String, BTreeSet<String>>) {
    graph_of(modules())
}

fn graph_of(
    modules: BTreeMap<String, String>,
) -> (BTreeMap<String, String>, BTreeMap<String, BTreeSet<String>>) {
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    let edges = modules
        .iter()
        .map(|(m, code)| (m.clone(), imports(m, code, &known)))
        .collect();
    (modules, edges)
}

#[test]
fn every_module_has_a_layer() {
    let (modules, _) = graph();
    let unplaced: Vec<&String> = modules.keys().filter(|m| layer_of(m).is_none()).collect();
    assert!(
        unplaced.is_empty(),
        "modules with no layer (add them to LAYERS in tests/layers.rs and to docs/ARCHITECTURE.md): {unplaced:?}"
    );
}

#[test]
fn no_module_imports_from_a_layer_above_its_own() {
    let (_, edges) = graph();
    let mut wrong = Vec::new();
    for (from, targets) in &edges {
        let Some(own) = layer_of(from) else { continue };
        for to in targets {
            if let Some(theirs) = layer_of(to)
                && theirs > own
            {
                wrong.push(format!("{from} ({own:?}) imports {to} ({theirs:?})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

/// The `[dependencies]` names of the crate in `host/<dir>`.
fn dependencies_of(dir: &str) -> Vec<String> {
    let manifest =
        std::fs::read_to_string(host_dir().join(dir).join("Cargo.toml")).expect("read Cargo.toml");
    let mut names = Vec::new();
    let mut in_dependencies = false;
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            in_dependencies = line == "[dependencies]";
        } else if in_dependencies && let Some((key, _)) = line.split_once('=') {
            let key = key.trim();
            names.push(key.strip_suffix(".workspace").unwrap_or(key).to_string());
        }
    }
    names
}

#[test]
fn storage_the_runtime_and_the_core_know_nothing_of_http_serving() {
    let mut found = Vec::new();
    for (dir, _, forbidden) in LOWER_CRATES {
        let dependencies = dependencies_of(dir);
        assert!(
            !dependencies.is_empty(),
            "host/{dir}/Cargo.toml has no dependencies?"
        );
        found.extend(
            dependencies
                .into_iter()
                .filter(|d| forbidden.contains(&d.as_str()))
                .map(|d| format!("host/{dir} depends on {d}")),
        );
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn each_lower_crate_depends_only_on_crates_below_it() {
    let mut wrong = Vec::new();
    for (dir, layer, _) in LOWER_CRATES {
        for dependency in dependencies_of(dir) {
            let Some(below) = dependency.strip_prefix("malipo-") else {
                continue;
            };
            match LOWER_CRATES.iter().find(|(d, _, _)| *d == below) {
                Some((_, theirs, _)) if theirs < layer => {}
                _ => wrong.push(format!("host/{dir} depends on {dependency}")),
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:?}");
}

#[test]
fn no_ring_of_modules_is_wide() {
    let mut crates = vec![("malipo".to_string(), graph().1)];
    for (dir, _, _) in LOWER_CRATES {
        crates.push((
            dir.to_string(),
            graph_of(modules_of(&host_dir().join(dir).join("src"))).1,
        ));
    }
    for (name, edges) in crates {
        assert!(edges.len() > 3, "{name}: too few modules read");
        let widest = rings(&edges)
            .into_iter()
            .max_by_key(|r| r.len())
            .unwrap_or_default();
        assert!(
            widest.len() <= MAX_RING,
            "{name}: a ring of {} modules import each other: {widest:?}",
            widest.len()
        );
    }
}

/// Strongly connected components (Tarjan), iteratively.
fn rings(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        let edges = s.edges;
        for w in edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut ring = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                ring.push(w.to_string());
                if w == v {
                    break;
                }
            }
            s.out.push(ring);
        }
    }
    let mut state = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.out
}
