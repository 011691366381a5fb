//! `zeno serve --watch`: a rolling restart of the workers when the app's PHP files change,
//! for the development loop.
//!
//! Changes arrive from the kernel (inotify, through the `notify` crate); a burst of them — an
//! editor saving, `git checkout` — becomes one reload once the files have been quiet for
//! [`QUIET`]. The reload is the same warm, rolling one as `POST /reload`, so requests made
//! while it runs are served.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use notify::{RecursiveMode, Watcher as _};
use tokio_util::sync::CancellationToken;

/// How long the files must stay unchanged before the workers reload.
const QUIET: Duration = Duration::from_millis(200);

/// Directories whose files never trigger a reload: what the app writes itself (`storage`:
/// logs, compiled views, caches) and dependencies that change only with a deploy.
const IGNORED: &[&str] = &["storage", "vendor", "node_modules", ".git"];

/// Whether a change to `path` (under `root`) should reload the workers: a `.php` file outside
/// the ignored directories.
fn relevant(root: &Path, path: &Path) -> bool {
    let is_php = path
        .extension()
        .is_some_and(|ext| ext.eq_ignore_ascii_case("php"));
    let relative = path.strip_prefix(root).unwrap_or(path);
    is_php
        && !relative.components().any(|component| {
            matches!(component, Component::Normal(name) if IGNORED.iter().any(|ignored| name == *ignored))
        })
}

/// Watches `root` until `stop` is cancelled, reloading `host`'s workers after changes.
pub fn spawn(
    root: PathBuf,
    host: Arc<zeno_host::Host>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<PathBuf>();
    let filter_root = root.clone();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return;
        }
        for path in event.paths {
            if relevant(&filter_root, &path) {
                let _ = tx.send(path);
            }
        }
    })
    .context("starting the file watcher")?;
    watcher
        .watch(&root, RecursiveMode::Recursive)
        .with_context(|| format!("watching {}", root.display()))?;
    tracing::info!(dir = %root.display(), "watching PHP files; a change reloads the workers");
    tokio::spawn(async move {
        // Owned here: the watcher stops when this task ends.
        let _watcher = watcher;
        loop {
            let first = tokio::select! {
                _ = stop.cancelled() => return,
                path = rx.recv() => match path {
                    Some(path) => path,
                    None => return,
                },
            };
            let mut changed = 1;
            // Wait for a quiet moment: every further change restarts the wait.
            while let Ok(Some(_)) = tokio::time::timeout(QUIET, rx.recv()).await {
                changed += 1;
            }
            tracing::info!(file = %first.display(), changed, "PHP files changed; reloading the workers");
            host.reload();
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_php_files_outside_storage_vendor_and_node_modules_count() {
        let root = Path::new("/srv/app");
        assert!(relevant(root, Path::new("/srv/app/routes/web.php")));
        assert!(relevant(root, Path::new("/srv/app/app/Http/Kernel.PHP")));
        assert!(relevant(root, Path::new("/srv/app/index.php")));
        assert!(!relevant(
            root,
            Path::new("/srv/app/storage/framework/views/x.php")
        ));
        assert!(!relevant(root, Path::new("/srv/app/vendor/laravel/x.php")));
        assert!(!relevant(root, Path::new("/srv/app/node_modules/x/y.php")));
        assert!(!relevant(root, Path::new("/srv/app/.env")));
        assert!(!relevant(root, Path::new("/srv/app/public/app.css")));
        assert!(!relevant(root, Path::new("/srv/app/routes/web.php.swp")));
        // Only components under the root are checked: an app that lives in a `storage` dir.
        let root = Path::new("/storage/app");
        assert!(relevant(root, Path::new("/storage/app/routes/web.php")));
    }
}
