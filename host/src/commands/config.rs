//! The configuration file at the binary's edge, and `malipo config show`:
//! reads `--config` / `MALIPO_CONFIG` before the command line is parsed,
//! makes the file's values the defaults of the matching flags (so a flag
//! still beats the environment, which beats the file), and prints the
//! effective configuration with secrets redacted.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgMatches, Command, parser::ValueSource};
use malipo::config::layers::{self, FileLayer, SETTINGS, Source};

/// The file named by `--config FILE`, `--config=FILE` or `MALIPO_CONFIG`,
/// read and installed for the whole process. Runs before clap parses, so
/// that the file's values can become the flags' defaults.
pub fn install_file(args: &[OsString]) -> anyhow::Result<()> {
    let mut named: Option<PathBuf> = None;
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let text = arg.to_string_lossy();
        if text == "--" {
            break;
        }
        if text == "--config" {
            named = rest.next().map(PathBuf::from);
        } else if let Some(path) = text.strip_prefix("--config=") {
            named = Some(PathBuf::from(path));
        }
    }
    let path = named.or_else(|| std::env::var_os("MALIPO_CONFIG").map(PathBuf::from));
    if let Some(path) = path {
        let layer = FileLayer::read(&path)?;
        layers::install(layer);
    }
    Ok(())
}

/// `command` with every flag that has a `MALIPO_*` variable defaulting to
/// the configuration file's value when the environment does not set it.
pub fn with_file_defaults(command: Command) -> Command {
    let Some(file) = layers::file() else {
        return command;
    };
    command
        .mut_args(|arg| {
            let from_file = arg
                .get_env()
                .and_then(|env| env.to_str())
                .filter(|env| std::env::var_os(env).is_none())
                .and_then(|env| file.get(env))
                .map(str::to_string);
            match from_file {
                Some(value) => arg.default_value(value),
                None => arg,
            }
        })
        .mut_subcommands(with_file_defaults)
}

/// The settings given as flags on this command line, by variable name.
pub fn flags_given(command: &Command, matches: &ArgMatches) -> BTreeMap<&'static str, String> {
    let mut given = BTreeMap::new();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        let Some(env) = arg.get_env().and_then(|e| e.to_str()) else {
            continue;
        };
        let Some(setting) = layers::setting(env) else {
            continue;
        };
        if matches.value_source(id) == Some(ValueSource::CommandLine)
            && let Some(mut raw) = matches.get_raw(id)
            && let Some(value) = raw.next()
        {
            given.insert(setting.name, value.to_string_lossy().to_string());
        }
    }
    given
}

/// `malipo config show [--json]`.
pub fn show(flags: &BTreeMap<&'static str, String>, json: bool) -> anyhow::Result<()> {
    let rows: Vec<(&'static str, String, Option<String>, Source)> = SETTINGS
        .iter()
        .map(|setting| {
            let (value, source) = layers::effective(setting, flags);
            let value = match value {
                Some(_) if setting.secret => Some("<redacted>".to_string()),
                other => other,
            };
            (setting.name, setting.file_key(), value, source)
        })
        .collect();
    if json {
        let settings: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, key, value, source)| {
                serde_json::json!({"name": name, "file_key": key, "value": value, "source": source})
            })
            .collect();
        let file = layers::file().and_then(|f| f.path.clone());
        let document = serde_json::json!({"config_file": file, "settings": settings});
        let text = serde_json::to_string_pretty(&document).context("print the configuration")?;
        return print(&format!("{text}\n"));
    }
    let mut text = match layers::file().and_then(|f| f.path.as_ref()) {
        Some(path) => format!("# configuration file: {}\n", path.display()),
        None => "# configuration file: none (--config / MALIPO_CONFIG)\n".to_string(),
    };
    let width = rows.iter().map(|r| r.0.len()).max().unwrap_or(0);
    for (name, _, value, source) in &rows {
        let source = match source {
            Source::Flag => "flag",
            Source::Env => "env",
            Source::File => "file",
            Source::Default => "default",
            Source::Unset => "unset",
        };
        text.push_str(&format!(
            "{name:<width$}  {source:<8} {}\n",
            value.as_deref().unwrap_or("-")
        ));
    }
    print(&text)
}

/// Writes to stdout; a reader that went away (`| head`) is not an error.
fn print(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    match std::io::stdout().lock().write_all(text.as_bytes()) {
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("write to stdout"),
    }
}
