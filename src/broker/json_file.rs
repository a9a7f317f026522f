//! The small JSON files the broker keeps beside topics.json (users.json, acls.json): read whole
//! at start (a missing file is the default: nothing configured yet), replaced whole (write,
//! fsync, rename, fsync of the directory) so a crash leaves the old file or the new one, never
//! a torn one.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The file `name` in `data_dir`, or `T::default()` when there is none.
pub fn load<T: DeserializeOwned + Default>(data_dir: &Path, name: &str) -> Result<T, String> {
    let path = data_dir.join(name);
    match fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|error| format!("{}: {error}", path.display()))
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(T::default()),
        Err(error) => Err(format!("{}: {error}", path.display())),
    }
}

/// Replaces the file `name` in `data_dir` with `value`, durably.
pub fn save<T: Serialize>(data_dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    let temporary = data_dir.join(format!("{name}.tmp"));
    let mut file = fs::File::create(&temporary)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, data_dir.join(name))?;
    crate::storage::dirsync::sync_dir(data_dir)
}
