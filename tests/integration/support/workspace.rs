//! A throw-away copy of an example service, so tests can change its code.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A copy of `examples/<name>` in a temporary folder, removed on drop.
#[derive(Debug)]
pub struct Workspace {
    root: PathBuf,
}

impl Workspace {
    /// Copies the example.
    pub fn example(name: &str) -> Self {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples").join(name);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let root = std::env::temp_dir().join(format!("aliasflow-test-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        copy(&source, &root);
        Self { root }
    }

    /// A path inside the copy.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    /// Rewrites a file of the copy.
    pub fn edit(&self, relative: &str, change: impl FnOnce(&str) -> String) {
        let path = self.path(relative);
        let text = std::fs::read_to_string(&path).expect("readable");
        std::fs::write(&path, change(&text)).expect("writable");
    }
}

impl Drop for Workspace {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the example") {
        let entry = entry.expect("an entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("a type").is_dir() {
            copy(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy a file");
        }
    }
}
