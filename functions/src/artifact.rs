//! Code packages: a `.zip` file as it is, or a directory zipped reproducibly, with the sha256
//! that Lambda reports as `CodeSha256`. The same tree always gives the same bytes, so unchanged
//! code is recognised by its hash and never uploaded or published again. This is I/O, not domain.

use std::fmt;
use std::fs;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};

use base64::Engine;
use sha2::{Digest, Sha256};
use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

/// Deflate level: fixed, so the bytes depend on the files alone.
const DEFLATE_LEVEL: i64 = 6;
/// Deeper than this is taken for a symbolic link loop.
const MAX_DEPTH: usize = 64;

/// A code package, ready to upload.
#[derive(Clone, PartialEq, Eq)]
pub struct Package {
    /// The zip archive.
    pub bytes: Vec<u8>,
    /// sha256 of the bytes, base64: what Lambda reports as `CodeSha256`.
    pub sha256_base64: String,
    /// sha256 of the bytes, hex: the artifact's key (see `naming::artifact_key`).
    pub sha256_hex: String,
}

impl Package {
    /// A package of these zip bytes, its hashes computed.
    pub fn from_bytes(bytes: Vec<u8>) -> Package {
        let digest = Sha256::digest(&bytes);
        Package {
            sha256_base64: base64::engine::general_purpose::STANDARD.encode(digest),
            sha256_hex: hex::encode(digest),
            bytes,
        }
    }
}

impl fmt::Debug for Package {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Package")
            .field("len", &self.bytes.len())
            .field("sha256_hex", &self.sha256_hex)
            .finish_non_exhaustive()
    }
}

/// Why a function's code could not be packaged.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    /// The `code` path does not exist.
    #[error("code {}: no such file or directory; build the function first, or fix its `code` in \
        the manifest (paths are relative to the manifest's folder)", .path.display())]
    Missing {
        /// The path as resolved.
        path: PathBuf,
    },
    /// A directory without a single file.
    #[error("code {}: the directory has no files; put the function's build output in it (for \
        provided runtimes, an executable `bootstrap`)", .path.display())]
    EmptyDirectory {
        /// The directory.
        path: PathBuf,
    },
    /// Neither a `.zip` file nor a directory.
    #[error("code {}: is neither a .zip file nor a directory; point `code` at \
        one", .path.display())]
    NotZipOrDirectory {
        /// The path.
        path: PathBuf,
    },
    /// A `.zip` file that is not a zip archive.
    #[error("code {}: is not a zip archive; rebuild it, or point `code` at the directory to \
        zip", .path.display())]
    NotAZip {
        /// The file.
        path: PathBuf,
    },
    /// A file or directory that cannot be read.
    #[error("code {}: cannot read {}: {source}; check that it is \
        readable", .path.display(), .entry.display())]
    Unreadable {
        /// The `code` path.
        path: PathBuf,
        /// What could not be read, inside it or itself.
        entry: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A name that a zip entry cannot carry, or a tree too deep to be anything but a link loop.
    #[error("code {}: cannot package {}: {reason}", .path.display(), .entry.display())]
    Unpackable {
        /// The `code` path.
        path: PathBuf,
        /// The entry.
        entry: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
}

/// Packages a function's code: a `.zip` file is taken as it is; a directory is zipped
/// reproducibly (entries sorted by path with '/' separators, timestamps 1980-01-01 00:00, mode
/// 0755 for files executable by their owner else 0644, deflate at a fixed level, no directory
/// entries), so the same tree gives the same bytes and hash.
pub fn package(code: &Path) -> Result<Package, ArtifactError> {
    let metadata = fs::metadata(code).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => ArtifactError::Missing { path: code.to_owned() },
        _ => ArtifactError::Unreadable { path: code.to_owned(), entry: code.to_owned(), source },
    })?;
    if metadata.is_dir() {
        return zip_directory(code);
    }
    let is_zip = code.extension().is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    if !metadata.is_file() || !is_zip {
        return Err(ArtifactError::NotZipOrDirectory { path: code.to_owned() });
    }
    let bytes = fs::read(code).map_err(|source| ArtifactError::Unreadable {
        path: code.to_owned(),
        entry: code.to_owned(),
        source,
    })?;
    // A local file header, or the end record of an empty archive.
    if !(bytes.starts_with(b"PK\x03\x04") || bytes.starts_with(b"PK\x05\x06")) {
        return Err(ArtifactError::NotAZip { path: code.to_owned() });
    }
    Ok(Package::from_bytes(bytes))
}

/// One file to pack.
struct File {
    name: String,
    path: PathBuf,
    executable: bool,
}

fn zip_directory(root: &Path) -> Result<Package, ArtifactError> {
    let mut files = Vec::new();
    collect(root, root, "", 0, &mut files)?;
    if files.is_empty() {
        return Err(ArtifactError::EmptyDirectory { path: root.to_owned() });
    }
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let failed = |entry: &Path, e: &dyn fmt::Display| ArtifactError::Unpackable {
        path: root.to_owned(),
        entry: entry.to_owned(),
        reason: format!("zipping failed: {e}"),
    };
    let mut writer = ZipWriter::new(Cursor::new(Vec::new()));
    for file in &files {
        let bytes = fs::read(&file.path).map_err(|source| ArtifactError::Unreadable {
            path: root.to_owned(),
            entry: file.path.clone(),
            source,
        })?;
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(DEFLATE_LEVEL))
            .last_modified_time(DateTime::default())
            .unix_permissions(if file.executable { 0o755 } else { 0o644 });
        writer.start_file(file.name.as_str(), options).map_err(|e| failed(&file.path, &e))?;
        writer.write_all(&bytes).map_err(|e| failed(&file.path, &e))?;
    }
    let bytes = writer.finish().map_err(|e| failed(root, &e))?.into_inner();
    Ok(Package::from_bytes(bytes))
}

/// Collects the files under `dir`, following symbolic links (as `zip -r` does).
fn collect(root: &Path, dir: &Path, prefix: &str, depth: usize, files: &mut Vec<File>) -> Result<(), ArtifactError> {
    let unreadable =
        |entry: &Path, source| ArtifactError::Unreadable { path: root.to_owned(), entry: entry.to_owned(), source };
    if depth > MAX_DEPTH {
        return Err(ArtifactError::Unpackable {
            path: root.to_owned(),
            entry: dir.to_owned(),
            reason: format!("more than {MAX_DEPTH} directories deep; is there a symbolic link loop?"),
        });
    }
    for entry in fs::read_dir(dir).map_err(|e| unreadable(dir, e))? {
        let path = entry.map_err(|e| unreadable(dir, e))?.path();
        let metadata = fs::metadata(&path).map_err(|e| unreadable(&path, e))?;
        let Some(file_name) = path.file_name().and_then(|n| n.to_str()) else {
            return Err(ArtifactError::Unpackable {
                path: root.to_owned(),
                entry: path.clone(),
                reason: "its name is not UTF-8; rename it".to_owned(),
            });
        };
        let name = format!("{prefix}{file_name}");
        if metadata.is_dir() {
            collect(root, &path, &format!("{name}/"), depth + 1, files)?;
        } else if metadata.is_file() {
            files.push(File { name, executable: is_executable(&metadata), path });
        }
    }
    Ok(())
}

#[cfg(unix)]
fn is_executable(metadata: &fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    metadata.permissions().mode() & 0o100 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &fs::Metadata) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    use super::*;

    /// A fresh directory under the system's temp folder, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new() -> Scratch {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("aliasflow-artifact-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Scratch(dir)
        }

        fn write(&self, name: &str, content: &str) -> PathBuf {
            let path = self.0.join(name);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, content).unwrap();
            path
        }

        /// A small function tree: an executable bootstrap and a nested data file.
        fn function(&self) -> PathBuf {
            let bootstrap = self.write("fn/bootstrap", "#!/bin/sh\necho hi\n");
            set_executable(&bootstrap);
            self.write("fn/data/config.json", "{}");
            self.write("fn/README", "readme");
            self.0.join("fn")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[cfg(unix)]
    fn set_executable(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[cfg(not(unix))]
    fn set_executable(_: &Path) {}

    #[test]
    fn the_same_tree_gives_the_same_bytes_twice() {
        let a = Scratch::new();
        let b = Scratch::new();
        let (first, second) = (package(&a.function()).unwrap(), package(&b.function()).unwrap());
        assert_eq!(first.sha256_hex, second.sha256_hex);
        assert_eq!(first.bytes, second.bytes);
    }

    #[test]
    fn touching_a_file_keeps_the_hash() {
        let scratch = Scratch::new();
        let dir = scratch.function();
        let before = package(&dir).unwrap();
        let file = fs::File::options().write(true).open(dir.join("README")).unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(86_400 * 30)).unwrap();
        assert_eq!(package(&dir).unwrap().sha256_hex, before.sha256_hex);
    }

    #[test]
    fn changing_a_file_changes_the_hash() {
        let scratch = Scratch::new();
        let dir = scratch.function();
        let before = package(&dir).unwrap();
        scratch.write("fn/bootstrap", "#!/bin/sh\necho changed\n");
        assert_ne!(package(&dir).unwrap().sha256_hex, before.sha256_hex);
    }

    #[test]
    fn entries_are_sorted_files_with_fixed_times_and_modes() {
        let scratch = Scratch::new();
        let package = package(&scratch.function()).unwrap();
        let mut archive = zip::ZipArchive::new(Cursor::new(package.bytes)).unwrap();
        let mut entries = Vec::new();
        for i in 0..archive.len() {
            let entry = archive.by_index(i).unwrap();
            assert_eq!(entry.last_modified(), Some(DateTime::default()));
            entries.push((entry.name().to_owned(), entry.unix_mode().map(|m| m & 0o777)));
        }
        let executable = if cfg!(unix) { 0o755 } else { 0o644 };
        assert_eq!(
            entries,
            [
                ("README".to_owned(), Some(0o644)),
                ("bootstrap".to_owned(), Some(executable)),
                ("data/config.json".to_owned(), Some(0o644))
            ]
        );
    }

    #[test]
    fn the_hashes_are_those_lambda_reports() {
        let package = Package::from_bytes(b"abc".to_vec());
        assert_eq!(package.sha256_hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(package.sha256_base64, "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=");
    }

    #[test]
    fn a_zip_file_is_taken_as_it_is() {
        let scratch = Scratch::new();
        let zipped = package(&scratch.function()).unwrap();
        let path = scratch.0.join("fn.zip");
        fs::write(&path, &zipped.bytes).unwrap();
        assert_eq!(package(&path).unwrap(), zipped);
    }

    #[test]
    fn a_missing_path_says_what_to_do() {
        let err = package(Path::new("/nonexistent/build/api.zip")).unwrap_err();
        assert!(matches!(err, ArtifactError::Missing { .. }));
        assert!(
            err.to_string().contains("/nonexistent/build/api.zip: no such file or directory; build the function first"),
            "{err}"
        );
    }

    #[test]
    fn an_empty_directory_is_refused() {
        let scratch = Scratch::new();
        fs::create_dir_all(scratch.0.join("empty/sub")).unwrap();
        let err = package(&scratch.0.join("empty")).unwrap_err();
        assert!(matches!(err, ArtifactError::EmptyDirectory { .. }), "{err}");
    }

    #[test]
    fn a_file_that_is_not_a_zip_is_refused() {
        let scratch = Scratch::new();
        let text = scratch.write("main.py", "print()");
        assert!(matches!(package(&text), Err(ArtifactError::NotZipOrDirectory { .. })));
        let fake = scratch.write("fake.zip", "not a zip");
        assert!(matches!(package(&fake), Err(ArtifactError::NotAZip { .. })));
    }

    #[cfg(unix)]
    #[test]
    fn an_unreadable_entry_is_named() {
        let scratch = Scratch::new();
        let dir = scratch.function();
        // A dangling link cannot be read even by root, unlike a file without permissions.
        std::os::unix::fs::symlink(scratch.0.join("gone"), dir.join("link")).unwrap();
        let err = package(&dir).unwrap_err();
        assert!(matches!(err, ArtifactError::Unreadable { .. }), "{err}");
        assert!(err.to_string().contains("cannot read") && err.to_string().contains("fn/link"), "{err}");
    }
}
