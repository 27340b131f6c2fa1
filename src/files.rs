//! File writing with the guarantees key material needs: secrets at 0600 from the first
//! byte, nothing overwritten by accident, nothing half-written. Used by the CA home and by
//! the client's key directories alike.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use std::path::PathBuf;

/// A file operation that failed, with the file it failed on.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source}", path.display())]
pub struct FileError {
    /// The file or directory.
    pub path: PathBuf,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FileError + '_ {
    move |source| FileError {
        path: path.to_owned(),
        source,
    }
}

/// Reads a whole file.
pub fn read(path: &Path) -> Result<Vec<u8>, FileError> {
    fs::read(path).map_err(io(path))
}

/// Creates a directory (and its parents) with mode 0700 if it does not exist.
pub fn create_private_dir(path: &Path) -> Result<(), FileError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(path)
        .map_err(io(path))
}

/// Writes a new file, failing if it exists; mode 0600 if `secret`, else 0644. The data is
/// on disk before this returns.
pub fn create_new(path: &Path, contents: &[u8], secret: bool) -> Result<(), FileError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(if secret { 0o600 } else { 0o644 })
        .open(path)
        .map_err(io(path))?;
    file.write_all(contents).map_err(io(path))?;
    file.sync_all().map_err(io(path))
}

/// Replaces a file atomically: a temporary file beside it is written and synced, then
/// renamed over it, and the directory is synced. A reader sees the old or the new file,
/// never half of one.
pub fn replace(path: &Path, contents: &[u8], secret: bool) -> Result<(), FileError> {
    // A bare file name's parent is "", which neither opens nor syncs: that is ".".
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp-{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
        std::process::id()
    ));
    let _ = fs::remove_file(&tmp);
    create_new(&tmp, contents, secret)?;
    fs::rename(&tmp, path).map_err(io(path))?;
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}
