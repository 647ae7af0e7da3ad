//! Issue 13: the README's walk-through cannot drift from the product. The
//! fenced `sh` blocks under "## Walk-through with curl" are run, as
//! written, by bash against the real binary (`MALIPO_URL` pointing at it,
//! `MALIPO_DATA_DIR` at its data directory, `malipo` on the `PATH`); every
//! request must succeed (curl fails on an HTTP error status here) and the
//! output must show, in order, each piece a `# → …` line promises.

use std::path::Path;
use std::process::Command;

use crate::helpers::{Options, TestApp};

const HEADING: &str = "## Walk-through with curl";
/// A line promising a piece of the output above it.
const EXPECT: &str = "# → ";

/// The `sh` blocks of the walk-through section.
fn walkthrough_blocks(readme: &str) -> Vec<String> {
    let start = readme
        .find(HEADING)
        .unwrap_or_else(|| panic!("README.md has no {HEADING:?} section"));
    let section = &readme[start + HEADING.len()..];
    let section = section.find("\n## ").map_or(section, |end| &section[..end]);
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in section.lines() {
        match (&mut current, line.trim_end()) {
            (None, "```sh") => current = Some(String::new()),
            (Some(block), "```") => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(
        current.is_none(),
        "an unclosed ``` block in the walk-through"
    );
    blocks
}

/// Runs with `set -euo pipefail`; `curl` fails on an HTTP error status
/// (printing the body) and ends its output with a newline.
const PRELUDE: &str = r#"set -euo pipefail
curl() { command curl --fail-with-body --max-time 30 "$@"; echo; }
"#;

#[tokio::test]
async fn the_readme_walkthrough_runs_as_written() {
    assert!(
        Command::new("curl").arg("--version").output().is_ok(),
        "the walk-through test needs curl (apt-get install curl)"
    );
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("read README.md");
    let blocks = walkthrough_blocks(&readme);
    let promised: usize = blocks
        .iter()
        .map(|b| b.lines().filter(|l| l.starts_with(EXPECT)).count())
        .sum();
    assert!(
        blocks.len() >= 2 && promised >= 8,
        "the walk-through lost its blocks or its `# →` lines: {blocks:#?}"
    );

    let app = TestApp::spawn_with(Options::daraja_sim()).await;
    let cwd = tempfile::tempdir().expect("temp dir");
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_malipo"))
        .parent()
        .expect("the binary's directory");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (index, block) in blocks.iter().enumerate() {
        let script = format!("{PRELUDE}{block}");
        let output = tokio::task::spawn_blocking({
            let script = script.clone();
            let cwd = cwd.path().to_path_buf();
            let base = app.base.clone();
            let data_dir = app.data_dir.clone();
            let path = path.clone();
            move || {
                Command::new("bash")
                    .arg("-c")
                    .arg(&script)
                    .current_dir(&cwd)
                    .env("MALIPO_URL", &base)
                    .env("MALIPO_DATA_DIR", &data_dir)
                    .env(
                        "MALIPO_CACHE_DIR",
                        Path::new(env!("CARGO_TARGET_TMPDIR")).join("wasm-cache"),
                    )
                    .env("RUST_LOG", "warn")
                    .env("PATH", &path)
                    .output()
                    .expect("run bash")
            }
        })
        .await
        .expect("join");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "walk-through block {} failed ({}):\n{block}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
            index + 1,
            output.status
        );
        let mut from = 0;
        for expected in block.lines().filter_map(|l| l.strip_prefix(EXPECT)) {
            match stdout[from..].find(expected) {
                Some(at) => from += at + expected.len(),
                None => panic!(
                    "walk-through block {} promised {expected:?}, not in its output (after what came before):\n{stdout}",
                    index + 1
                ),
            }
        }
    }
}
