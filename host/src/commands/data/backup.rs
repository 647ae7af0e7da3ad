//! `malipo backup --to DIR [--keep N] [--no-keys]` and `malipo restore
//! --from PATH [--force]`: generations `DIR/malipo-backup-<yyyymmddThhmmssZ>/`
//! holding control.db, tenants/<id>.db (each an online-backup copy, so the
//! server may run), the key files and a manifest.json of sizes and SHA-256
//! sums; written under `.partial` and renamed once complete.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use malipo::cli::{BackupArgs, RestoreArgs};
use malipo::config::Config;
use malipo::ids::TenantId;
use malipo::tenancy::snapshot;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::commands::operator::{Failure, Out};

/// The version of manifest.json's shape.
const MANIFEST_FORMAT: u32 = 1;
/// Every generation's directory name starts with this.
const PREFIX: &str = "malipo-backup-";
/// Key files copied beside the databases unless `--no-keys`.
const KEY_FILES: &[&str] = &["master.key", "jwt.key"];

/// One file of a generation.
#[derive(Debug, Serialize, Deserialize)]
struct FileEntry {
    /// Relative to the generation (and to the data directory): `control.db`,
    /// `tenants/<id>.db`, `master.key`.
    path: String,
    bytes: u64,
    sha256: String,
}

/// `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    format: u32,
    malipo_version: String,
    created_at: String,
    data_dir: String,
    tenant_files: usize,
    control_tenants: usize,
    keys_included: bool,
    files: Vec<FileEntry>,
}

fn sha256_of(path: &Path) -> anyhow::Result<(u64, String)> {
    let mut file = std::fs::File::open(path).with_context(|| format!("read {}", path.display()))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut file, &mut hasher)?;
    Ok((bytes, hex::encode(hasher.finalize())))
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} ({per_sec}, eta {eta})",
        ) {
            bar.set_style(style);
        }
    } else {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    bar.set_message(what.to_string());
    bar
}

/// Tenant files in `<data-dir>/tenants/`, by id.
fn tenant_ids(tenants_dir: &Path) -> anyhow::Result<Vec<TenantId>> {
    let mut ids = Vec::new();
    if !tenants_dir.is_dir() {
        return Ok(ids);
    }
    for entry in std::fs::read_dir(tenants_dir)?.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().to_string();
        if let Some(id) = name.strip_suffix(".db").and_then(TenantId::parse) {
            ids.push(id);
        }
    }
    ids.sort();
    Ok(ids)
}

fn utc_stamp() -> anyhow::Result<String> {
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    Ok(time::OffsetDateTime::now_utc().format(&format)?)
}

/// `malipo backup`.
pub fn backup(config: &Config, args: BackupArgs) -> anyhow::Result<()> {
    Out::run(args.json, |out| back_up(config, &args, out))
}

fn back_up(config: &Config, args: &BackupArgs, out: Out) -> anyhow::Result<()> {
    if args.keep < 1 {
        return Err(Failure::error(
            "validation_failed",
            "--keep must be at least 1",
        ));
    }
    let control = super::open_control(config)?;
    std::fs::create_dir_all(&args.to).with_context(|| format!("create {}", args.to.display()))?;
    let name = format!("{PREFIX}{}", utc_stamp()?);
    let done = args.to.join(&name);
    anyhow::ensure!(
        !done.exists(),
        "{} already exists (one generation per second)",
        done.display()
    );
    let partial = args.to.join(format!("{name}.partial"));
    if partial.exists() {
        std::fs::remove_dir_all(&partial)?;
    }
    let started = std::time::Instant::now();
    let written = write_generation(config, &control, &partial, !args.no_keys);
    let manifest = match written {
        Ok(manifest) => manifest,
        Err(error) => {
            let _ = std::fs::remove_dir_all(&partial);
            return Err(error);
        }
    };
    std::fs::rename(&partial, &done)
        .with_context(|| format!("rename {} to {}", partial.display(), done.display()))?;
    let removed = prune(&args.to, args.keep)?;
    let bytes: u64 = manifest.files.iter().map(|f| f.bytes).sum();
    let seconds = started.elapsed().as_secs_f64();
    let document = json!({
        "generation": done.display().to_string(),
        "created_at": manifest.created_at,
        "tenant_files": manifest.tenant_files,
        "files": manifest.files.len(),
        "bytes": bytes,
        "keys_included": manifest.keys_included,
        "removed": removed.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
        "keep": args.keep,
        "seconds": seconds,
    });
    out.answer(&document, || {
        format!(
            "backed up control.db and {} tenant file(s) ({bytes} bytes) to {} in {seconds:.2} s; removed {} old generation(s), keeping {}",
            manifest.tenant_files,
            done.display(),
            removed.len(),
            args.keep
        )
    });
    Ok(())
}

fn write_generation(
    config: &Config,
    control: &malipo::control::ControlDb,
    dir: &Path,
    keys: bool,
) -> anyhow::Result<Manifest> {
    std::fs::create_dir_all(dir.join("tenants"))?;
    let tenants_dir = config.tenants_dir();
    let ids = tenant_ids(&tenants_dir)?;
    let bar = progress(ids.len() as u64 + 1, "backup");
    let mut files = Vec::with_capacity(ids.len() + 3);
    let mut record = |relative: String| -> anyhow::Result<()> {
        let (bytes, sha256) = sha256_of(&dir.join(&relative))?;
        files.push(FileEntry {
            path: relative,
            bytes,
            sha256,
        });
        Ok(())
    };
    {
        let conn = control.conn()?;
        snapshot::online_copy(&conn, &dir.join("control.db")).context("copy control.db")?;
    }
    record("control.db".into())?;
    bar.inc(1);
    for id in &ids {
        let relative = format!("tenants/{id}.db");
        snapshot::backup_tenant(&tenants_dir, *id, &dir.join(&relative))
            .with_context(|| format!("copy tenant {id}"))?;
        record(relative)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let mut keys_included = false;
    if keys {
        for key in KEY_FILES {
            let source = config.data_dir.join(key);
            if source.is_file() {
                std::fs::copy(&source, dir.join(key))?;
                record((*key).to_string())?;
                keys_included = true;
            }
        }
    }
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        malipo_version: env!("CARGO_PKG_VERSION").into(),
        created_at: malipo::time_util::now_rfc3339(),
        data_dir: config.data_dir.display().to_string(),
        tenant_files: ids.len(),
        control_tenants: control.tenants()?.len(),
        keys_included,
        files,
    };
    let text = serde_json::to_string_pretty(&manifest)?;
    let path = dir.join("manifest.json");
    std::fs::write(&path, text)?;
    std::fs::File::open(&path)?.sync_all()?;
    Ok(manifest)
}

/// Complete generations in `dir`, oldest first (names sort by time).
fn generations(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(PREFIX) && !n.ends_with(".partial"))
                && path.join("manifest.json").is_file()
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Removes all but the newest `keep` generations; answers those removed.
fn prune(dir: &Path, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let all = generations(dir)?;
    let excess = all.len().saturating_sub(keep);
    let removed: Vec<PathBuf> = all.into_iter().take(excess).collect();
    for old in &removed {
        std::fs::remove_dir_all(old).with_context(|| format!("remove {}", old.display()))?;
    }
    Ok(removed)
}

/// `malipo restore`.
pub fn restore(config: &Config, args: RestoreArgs) -> anyhow::Result<()> {
    Out::run(args.json, |out| put_back(config, &args, out))
}

fn put_back(config: &Config, args: &RestoreArgs, out: Out) -> anyhow::Result<()> {
    // Held until the files are in place: a server started meanwhile refuses.
    let _lock = crate::commands::guard::exclusive(config, "restore")?;
    let generation = if args.from.join("manifest.json").is_file() {
        args.from.clone()
    } else {
        generations(&args.from)
            .ok()
            .and_then(|mut all| all.pop())
            .ok_or_else(|| {
                Failure::error(
                    "not_found",
                    format!("no complete backup generation in {}", args.from.display()),
                )
            })?
    };
    let text =
        std::fs::read_to_string(generation.join("manifest.json")).context("read manifest.json")?;
    let manifest: Manifest = serde_json::from_str(&text).context("parse manifest.json")?;
    anyhow::ensure!(
        manifest.format <= MANIFEST_FORMAT,
        "the backup's manifest format {} is newer than this binary's {MANIFEST_FORMAT}",
        manifest.format
    );
    // Every file is checked before anything is written.
    let bar = progress(manifest.files.len() as u64 * 2, "restore");
    for file in &manifest.files {
        anyhow::ensure!(
            safe_relative(&file.path),
            "the manifest names an unexpected path `{}`",
            file.path
        );
        let (bytes, sha256) = sha256_of(&generation.join(&file.path))?;
        if bytes != file.bytes || sha256 != file.sha256 {
            return Err(Failure::error(
                "validation_failed",
                format!(
                    "{} does not match the manifest (damaged or edited backup); nothing was restored",
                    file.path
                ),
            ));
        }
        bar.inc(1);
    }
    let control = config.control_db_path();
    if !args.force && control.exists() {
        return Err(Failure::error(
            "conflict",
            format!("{} exists; pass --force to overwrite it", control.display()),
        ));
    }
    std::fs::create_dir_all(config.tenants_dir())?;
    for file in &manifest.files {
        let target = config.data_dir.join(&file.path);
        let staging = PathBuf::from(format!("{}.restoring", target.display()));
        std::fs::copy(generation.join(&file.path), &staging)
            .with_context(|| format!("write {}", staging.display()))?;
        std::fs::File::open(&staging)?.sync_all()?;
        // A WAL left from the file being replaced would be replayed onto it.
        for suffix in ["-wal", "-shm", "-journal"] {
            let companion = PathBuf::from(format!("{}{suffix}", target.display()));
            if companion.exists() {
                std::fs::remove_file(&companion)?;
            }
        }
        std::fs::rename(&staging, &target)?;
        bar.inc(1);
    }
    bar.finish_and_clear();
    let document = json!({
        "generation": generation.display().to_string(),
        "created_at": manifest.created_at,
        "tenant_files": manifest.tenant_files,
        "files": manifest.files.len(),
        "keys_included": manifest.keys_included,
        "data_dir": config.data_dir.display().to_string(),
    });
    out.answer(&document, || {
        format!(
            "restored control.db and {} tenant file(s) from {} (made {}) into {}",
            manifest.tenant_files,
            generation.display(),
            manifest.created_at,
            config.data_dir.display()
        )
    });
    Ok(())
}

/// `control.db`, `tenants/<uuid>.db` or a key file: nothing else is written.
fn safe_relative(path: &str) -> bool {
    path == "control.db"
        || KEY_FILES.contains(&path)
        || path
            .strip_prefix("tenants/")
            .and_then(|name| name.strip_suffix(".db"))
            .and_then(TenantId::parse)
            .is_some()
}
