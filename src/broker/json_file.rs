//! The small JSON files the broker keeps in its data directory, and the one way they are
//! replaced: written to a temporary file, fsynced, renamed over the old one and the directory
//! fsynced, so a crash leaves the old file or the new one, never a torn one.
//!
//! Two shapes share that write: plain JSON (users.json, acls.json: a missing file is the
//! default, nothing configured yet) and checksummed JSON (topics.json, exchanges.json: a first
//! line `xxh3:<hex>` holding the checksum of the rest, so damage is refused at start rather
//! than read as some other metadata). Both are read from disk, so both are hostile: a file
//! larger than its bound is refused before it is read.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Plain JSON files (users, ACLs) larger than this are refused.
const PLAIN_FILE_BYTES_MAX: u64 = 64 << 20;

/// The file `name` in `data_dir`, or `T::default()` when there is none.
pub fn load<T: DeserializeOwned + Default>(data_dir: &Path, name: &str) -> Result<T, String> {
    let path = data_dir.join(name);
    match read_bounded(data_dir, name, PLAIN_FILE_BYTES_MAX)? {
        Some(text) => {
            serde_json::from_str(&text).map_err(|error| format!("{}: {error}", path.display()))
        }
        None => Ok(T::default()),
    }
}

/// Replaces the file `name` in `data_dir` with `value`, durably.
pub fn save<T: Serialize>(data_dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    replace(data_dir, name, &bytes)
}

/// Reads the checksummed file `name` in `dir` and checks its checksum; None if there is no
/// such file, an error if it is larger than `bytes_max` or damaged.
pub fn load_checked(dir: &Path, name: &str, bytes_max: u64) -> Result<Option<String>, String> {
    let path = dir.join(name);
    let Some(text) = read_bounded(dir, name, bytes_max)? else {
        return Ok(None);
    };
    let (checksum_line, body) = text
        .split_once('\n')
        .ok_or_else(|| format!("{}: no checksum line", path.display()))?;
    let expected = checksum_line.strip_prefix("xxh3:").unwrap_or_default();
    let actual = format!("{:016x}", xxhash_rust::xxh3::xxh3_64(body.as_bytes()));
    if expected != actual {
        return Err(format!(
            "{}: checksum {expected:?} does not match the content ({actual}); refusing to guess",
            path.display()
        ));
    }
    Ok(Some(body.to_string()))
}

/// Replaces the checksummed file `name` in `dir` with `body`, durably.
pub fn save_checked(dir: &Path, name: &str, body: &str) -> io::Result<()> {
    let checksum = xxhash_rust::xxh3::xxh3_64(body.as_bytes());
    let mut bytes = format!("xxh3:{checksum:016x}\n").into_bytes();
    bytes.extend_from_slice(body.as_bytes());
    replace(dir, name, &bytes)
}

/// The one write-temp, fsync, rename, fsync-the-directory.
fn replace(dir: &Path, name: &str, bytes: &[u8]) -> io::Result<()> {
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = fs::File::create(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&temporary, dir.join(name))?;
    crate::storage::dirsync::sync_dir(dir)
}

/// The whole file as text, None if it does not exist, refused beyond `bytes_max`.
fn read_bounded(dir: &Path, name: &str, bytes_max: u64) -> Result<Option<String>, String> {
    let path = dir.join(name);
    let file = match fs::File::open(&path) {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    let mut text = String::new();
    file.take(bytes_max.saturating_add(1))
        .read_to_string(&mut text)
        .map_err(|error| format!("{}: {error}", path.display()))?;
    if text.len() as u64 > bytes_max {
        return Err(format!(
            "{}: larger than {bytes_max} bytes; refusing to read it",
            path.display()
        ));
    }
    Ok(Some(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checked_file_loads_and_damage_or_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load_checked(dir.path(), "x.json", 100).unwrap(), None);
        save_checked(dir.path(), "x.json", "[1,2]").unwrap();
        assert_eq!(
            load_checked(dir.path(), "x.json", 100).unwrap().unwrap(),
            "[1,2]"
        );
        assert!(
            load_checked(dir.path(), "x.json", 10)
                .unwrap_err()
                .contains("larger")
        );
        let path = dir.path().join("x.json");
        let damaged = fs::read_to_string(&path).unwrap().replace("[1,2]", "[1,3]");
        fs::write(&path, damaged).unwrap();
        assert!(
            load_checked(dir.path(), "x.json", 100)
                .unwrap_err()
                .contains("checksum")
        );
    }

    #[test]
    fn a_plain_file_round_trips_and_a_missing_one_is_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let missing: Vec<u32> = load(dir.path(), "y.json").unwrap();
        assert!(missing.is_empty());
        save(dir.path(), "y.json", &vec![3u32, 4]).unwrap();
        let loaded: Vec<u32> = load(dir.path(), "y.json").unwrap();
        assert_eq!(loaded, vec![3, 4]);
        assert!(!dir.path().join("y.json.tmp").exists());
    }
}
