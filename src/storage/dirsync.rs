//! Directory fsync: creating, renaming or deleting a file changes its directory, and only an
//! fsync of the directory makes that change survive a power cut. `fsynced` promises exactly
//! that survival, so every new segment file, new partition directory, rename and deletion on a
//! durable path goes through here.

use std::fs;
use std::io;
use std::path::Path;

/// fsyncs the directory `dir` itself (its entries, not the files in it).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

/// fsyncs the directory holding `path` (after `path` was created, renamed or deleted there).
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => sync_dir(Path::new(".")),
    }
}

/// `create_dir_all`, then an fsync of each directory whose entry was new, from the deepest up
/// to the first that already existed, so the whole new path survives a power cut.
pub fn create_dir_all_durable(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at {
        if path.as_os_str().is_empty() || path.exists() {
            break;
        }
        missing.push(path);
        at = path.parent();
    }
    fs::create_dir_all(dir)?;
    for created in missing {
        sync_parent(created)?;
    }
    Ok(())
}

/// Renames `from` to `to` and fsyncs the directories of both, so the rename is durable.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    sync_parent(to)?;
    if from.parent() != to.parent() {
        sync_parent(from)?;
    }
    Ok(())
}

/// Removes whatever is at `path` (a directory tree, or a file where a stray one stands), if
/// anything, and fsyncs its parent. A link is removed, never followed.
pub fn remove_all_durable(path: &Path) -> io::Result<()> {
    let removed = match fs::symlink_metadata(path) {
        Ok(metadata) if metadata.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(error) => Err(error),
    };
    match removed {
        Ok(()) => sync_parent(path),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(error),
    }
}

/// `remove_all_durable` on the blocking pool, so that deleting a partition's files (a topic
/// deletion or re-creation) does not stall the shard's other partitions.
pub async fn remove_all_durable_off_shard(path: &Path) -> io::Result<()> {
    let path = path.to_path_buf();
    crate::runtime::blocking(move || remove_all_durable(&path)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_renames_and_removes_nested_directories() {
        let root = tempfile::tempdir().unwrap();
        let deep = root.path().join("a/b/c");
        create_dir_all_durable(&deep).unwrap();
        assert!(deep.is_dir());
        create_dir_all_durable(&deep).unwrap();
        let moved = root.path().join("a/moved");
        rename_durable(&deep, &moved).unwrap();
        assert!(moved.is_dir() && !deep.exists());
        remove_all_durable(&root.path().join("a")).unwrap();
        assert!(!root.path().join("a").exists());
        remove_all_durable(&root.path().join("a")).unwrap();
        let stray = root.path().join("stray");
        std::fs::write(&stray, b"not a directory").unwrap();
        remove_all_durable(&stray).unwrap();
        assert!(
            !stray.exists(),
            "a file where a directory was expected goes too"
        );
    }
}
