//! Small metadata files that must survive a crash whole: the topics and the exchanges. Each is
//! a first line `xxh3:<hex>` holding the checksum of the rest, then JSON, so damage is refused
//! at start rather than read as some other metadata. A write goes to a temporary file, is
//! fsynced, renamed over the old one and the directory fsynced: a crash leaves the old file or
//! the new one, never a mix.

use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

/// Reads `name` in `dir` and checks its checksum; None if there is no such file. A file larger
/// than `bytes_max` is refused before it is read: it is read from disk, so it is hostile too.
pub fn load(dir: &Path, name: &str, bytes_max: u64) -> Result<Option<String>, String> {
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

/// Replaces `name` in `dir` with `body` so that a crash leaves either the old or the new file.
pub fn save(dir: &Path, name: &str, body: &str) -> io::Result<()> {
    let checksum = xxhash_rust::xxh3::xxh3_64(body.as_bytes());
    let temporary = dir.join(format!("{name}.tmp"));
    let mut file = fs::File::create(&temporary)?;
    write!(file, "xxh3:{checksum:016x}\n{body}")?;
    file.sync_all()?;
    fs::rename(&temporary, dir.join(name))?;
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_file_loads_and_damage_or_size_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path(), "x.json", 100).unwrap(), None);
        save(dir.path(), "x.json", "[1,2]").unwrap();
        assert_eq!(load(dir.path(), "x.json", 100).unwrap().unwrap(), "[1,2]");
        assert!(
            load(dir.path(), "x.json", 10)
                .unwrap_err()
                .contains("larger")
        );
        let path = dir.path().join("x.json");
        let damaged = fs::read_to_string(&path).unwrap().replace("[1,2]", "[1,3]");
        fs::write(&path, damaged).unwrap();
        assert!(
            load(dir.path(), "x.json", 100)
                .unwrap_err()
                .contains("checksum")
        );
    }
}
