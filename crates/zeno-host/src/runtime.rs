//! The PHP runtime (`php-client/`) compiled into the binary, so `zeno serve` needs no
//! composer install: at start the files are written to a private temp directory.

use std::path::{Path, PathBuf};

macro_rules! bundle {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_str!(concat!("../php-client/", $path)))),*]
    };
}

/// Every file of the runtime, by its path inside `php-client/`.
const FILES: &[(&str, &str)] = bundle!(
    "bin/zeno-worker.php",
    "src/autoload.php",
    "src/Zeno.php",
    "src/Request.php",
    "src/Response.php",
    "src/TaskFailed.php",
    "src/TaskTimedOut.php",
    "src/Runtime/Channel.php",
    "src/Runtime/Deferred.php",
    "src/Runtime/Exchange.php",
    "src/Runtime/Output.php",
    "src/Runtime/Protocol.php",
    "src/Runtime/PhpStream.php",
    "src/Runtime/Superglobals.php",
    "src/Runtime/Tasks.php",
    "src/Runtime/Worker.php",
    "src/Db/Rows.php",
    "bin/zeno-laravel.php",
    "bin/zeno-artisan.php",
    "src/Laravel/AppLoader.php",
    "src/Laravel/ConcurrencyDriver.php",
    "src/Laravel/ArtisanWorker.php",
    "src/Laravel/HttpWorker.php",
    "src/Laravel/LogHandler.php",
    "src/Laravel/StateReset.php",
    "src/Laravel/TaskInvoker.php",
    "src/Laravel/ZenoServiceProvider.php",
    "src/Laravel/Database/ProxyConnector.php",
    "src/Laravel/Database/ZenoPdo.php",
    "src/Laravel/Database/ZenoPdoException.php",
    "src/Laravel/Database/ZenoStatement.php",
);

/// Where the runtime's files are: a temp directory owned by this host (removed when it is
/// dropped), or a checkout of `php-client/` given by the embedder.
#[derive(Debug)]
pub(crate) enum RuntimeDir {
    Bundled(tempfile::TempDir),
    External(PathBuf),
}

impl RuntimeDir {
    /// Writes the runtime to a fresh temp directory. It holds no secret, so it is readable
    /// by everyone — workers may run as another user than the host — and writable by no one
    /// but the host.
    pub(crate) fn unpack() -> std::io::Result<RuntimeDir> {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new().prefix("zeno-runtime-").tempdir()?;
        for (path, content) in FILES {
            let target = dir.path().join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
                std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755))?;
            }
            std::fs::write(&target, content)?;
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))?;
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        Ok(RuntimeDir::Bundled(dir))
    }

    pub(crate) fn path(&self) -> &Path {
        match self {
            RuntimeDir::Bundled(dir) => dir.path(),
            RuntimeDir::External(path) => path,
        }
    }

    /// The worker entry script.
    pub(crate) fn entry(&self) -> PathBuf {
        self.path().join("bin/zeno-worker.php")
    }

    /// A handler file shipped with the runtime (`bin/zeno-laravel.php`, …).
    pub(crate) fn bundled_handler(&self, name: &str) -> PathBuf {
        self.path().join("bin").join(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpacks_every_runtime_file() {
        let dir = RuntimeDir::unpack().expect("unpack");
        for (path, content) in FILES {
            let on_disk = std::fs::read_to_string(dir.path().join(path)).expect("read");
            assert_eq!(&on_disk, content);
        }
        assert!(dir.entry().is_file());
    }

    /// Every PHP file under php-client/src and bin must be bundled, or the worker would
    /// fail to autoload it only when a request first needs it.
    #[test]
    fn bundles_every_php_file() {
        fn walk(dir: &Path, root: &Path, found: &mut Vec<String>) {
            for entry in std::fs::read_dir(dir).expect("read_dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    walk(&path, root, found);
                } else if path.extension().is_some_and(|ext| ext == "php") {
                    let rel = path.strip_prefix(root).expect("under root");
                    found.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../php-client");
        let mut found = Vec::new();
        walk(&root.join("src"), &root, &mut found);
        walk(&root.join("bin"), &root, &mut found);
        assert!(found.len() >= 10, "walked php-client: {found:?}");
        let missing: Vec<_> = found
            .iter()
            .filter(|rel| !FILES.iter().any(|(p, _)| p == rel))
            .collect();
        assert!(missing.is_empty(), "not bundled: {missing:?}");
    }
}
