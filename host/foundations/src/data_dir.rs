//! The data directory's guard: an exclusive lock held by `malipo serve`
//! (`<data-dir>/malipo.lock`, the holder's pid inside) so that a second
//! server, or a command that replaces files under a server (`restore`,
//! `tenant delete --now`), refuses instead of racing it; and the
//! directory's permissions (0700 directories, 0600 files), so that other
//! local users cannot read tenants' data or keys.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

/// The lock file's name inside the data directory.
pub const LOCK_FILE: &str = "malipo.lock";

/// Why the data directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    /// Another process (a running server) holds the lock.
    #[error(
        "a malipo server (pid {pid}) is serving the data directory {dir}; stop it first (the lock is {lock})"
    )]
    Busy {
        /// The data directory.
        dir: String,
        /// The holder's pid as it wrote it, or `unknown`.
        pid: String,
        /// The lock file.
        lock: String,
    },
    /// A one-shot command (`malipo restore`, `malipo migrate`) holds the
    /// lock while it rewrites files.
    #[error(
        "`malipo {command}` (pid {pid}) is working on the data directory {dir}; wait for it to finish (the lock is {lock})"
    )]
    Command {
        /// The data directory.
        dir: String,
        /// The holder's pid.
        pid: String,
        /// The command holding it (`restore`, `migrate`).
        command: String,
        /// The lock file.
        lock: String,
    },
    /// The lock file could not be opened or written.
    #[error("lock the data directory {dir}: {source}")]
    Io {
        /// The data directory.
        dir: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// The held lock: released when dropped (or when the process ends, however
/// it ends — the operating system releases it).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

fn io(dir: &Path) -> impl FnOnce(std::io::Error) -> DataDirError + '_ {
    move |source| DataDirError::Io {
        dir: dir.display().to_string(),
        source,
    }
}

fn open_lock_file(dir: &Path) -> Result<(File, PathBuf), DataDirError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    restrict_dir(dir);
    let path = dir.join(LOCK_FILE);
    let mut options = OpenOptions::new();
    options.read(true).write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let file = options.open(&path).map_err(io(dir))?;
    Ok((file, path))
}

fn busy(dir: &Path, path: &Path, file: &mut File) -> DataDirError {
    let mut holder = String::new();
    let _ = file.read_to_string(&mut holder);
    // `<pid>` for a server, `<pid> <command>` for a one-shot command.
    let (pid, command) = holder
        .trim()
        .split_once(' ')
        .map_or((holder.trim(), ""), |(pid, command)| (pid, command.trim()));
    if !command.is_empty() {
        return DataDirError::Command {
            dir: dir.display().to_string(),
            pid: pid.to_string(),
            command: command.to_string(),
            lock: path.display().to_string(),
        };
    }
    DataDirError::Busy {
        dir: dir.display().to_string(),
        pid: if pid.is_empty() {
            "unknown".into()
        } else {
            pid.to_string()
        },
        lock: path.display().to_string(),
    }
}

/// Takes the data directory's exclusive lock for a server's lifetime;
/// [`DataDirError::Busy`] if another process holds it.
pub fn lock(dir: &Path) -> Result<DataDirLock, DataDirError> {
    take(dir, None)
}

/// Takes the data directory's exclusive lock for a one-shot command that
/// must not run beside a server (`restore`, `migrate`): refuses while a
/// server (or another such command) holds it, and a server started
/// meanwhile refuses naming `command`.
pub fn lock_for(dir: &Path, command: &str) -> Result<DataDirLock, DataDirError> {
    take(dir, Some(command))
}

fn take(dir: &Path, command: Option<&str>) -> Result<DataDirLock, DataDirError> {
    let (mut file, path) = open_lock_file(dir)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(busy(dir, &path, &mut file)),
        Err(std::fs::TryLockError::Error(error)) => return Err(io(dir)(error)),
    }
    // The pid is for people reading the error; the lock is what counts.
    file.set_len(0).map_err(io(dir))?;
    file.rewind().map_err(io(dir))?;
    match command {
        None => write!(file, "{}", std::process::id()),
        Some(command) => write!(file, "{} {command}", std::process::id()),
    }
    .map_err(io(dir))?;
    file.flush().map_err(io(dir))?;
    Ok(DataDirLock { _file: file, path })
}

/// Refuses ([`DataDirError::Busy`]) when a server holds the data
/// directory's lock; commands that replace or purge files call it first.
/// The answer is for this instant: a server started afterwards finds the
/// files as the command left them.
pub fn ensure_not_served(dir: &Path) -> Result<(), DataDirError> {
    if !dir.exists() {
        return Ok(());
    }
    let (mut file, path) = open_lock_file(dir)?;
    match file.try_lock_shared() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(busy(dir, &path, &mut file)),
        Err(std::fs::TryLockError::Error(error)) => Err(io(dir)(error)),
    }
}

/// Makes a directory the owner's only (0700); logged, not fatal, when it
/// cannot be done (a directory owned by someone else, a non-Unix system).
pub fn restrict_dir(dir: &Path) {
    set_mode(dir, 0o700);
}

/// Makes a file the owner's only (0600), and its SQLite companions
/// (`-wal`, `-shm`) when they exist.
pub fn restrict_file(path: &Path) {
    set_mode(path, 0o600);
    for suffix in ["-wal", "-shm"] {
        let mut companion = path.as_os_str().to_owned();
        companion.push(suffix);
        let companion = PathBuf::from(companion);
        if companion.exists() {
            set_mode(&companion, 0o600);
        }
    }
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let current = match std::fs::metadata(path) {
        Ok(meta) => meta.permissions().mode() & 0o777,
        Err(_) => return,
    };
    if current != mode
        && let Err(error) = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
    {
        tracing::warn!(path = %path.display(), %error, "could not restrict permissions");
    }
}

#[cfg(not(unix))]
fn set_mode(_path: &Path, _mode: u32) {}

/// Restricts the data directory, `tenants/`, `control.db` and every tenant
/// file already there (run once at start).
pub fn restrict_all(dir: &Path) {
    restrict_dir(dir);
    restrict_file(&dir.join("control.db"));
    let tenants = dir.join("tenants");
    restrict_dir(&tenants);
    if let Ok(entries) = std::fs::read_dir(&tenants) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "db") {
                restrict_file(&path);
            }
        }
    }
}
