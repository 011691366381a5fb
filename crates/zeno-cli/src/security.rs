//! Keeping the host's secrets from PHP: which user workers run as, a host that cannot be read
//! through `/proc` or ptrace, and warnings for the deployments where secrets would leak
//! anyway. The threat model is docs/security.md.

use std::path::Path;

use anyhow::{bail, Context as _};
use nix::unistd::{Gid, Group, Uid, User};
use zeno_host::Credentials;

use zeno_host::WorkersConfig;

/// Makes the host non-dumpable — no process of the same user can read its memory or
/// environment through `/proc` or attach to it with ptrace — and raises the open-file limit
/// to its hard limit, since every connection is a file descriptor.
pub fn harden_process() {
    if let Err(err) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!(error = %err, "could not make the host non-dumpable");
    }
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            if let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
                tracing::debug!(error = %err, soft, hard, "could not raise the open-file limit");
            }
        }
    }
}

/// The user and group workers run as, from `workers.user` and `workers.group`; `None` when
/// they run as the host's own user. Refuses a switch the host cannot make, and warns when PHP
/// would run as root.
pub fn worker_credentials(workers: &WorkersConfig) -> anyhow::Result<Option<Credentials>> {
    let euid = Uid::effective();
    let Some(user) = &workers.user else {
        if workers.group.is_some() {
            bail!("workers.group is set without workers.user: set both, or neither");
        }
        if euid.is_root() {
            tracing::warn!(
                "zeno runs as root and workers.user is not set: PHP runs as root and can read the host's secrets (its environment, its memory, the config file); set workers.user (ZENO_WORKERS__USER)"
            );
        }
        return Ok(None);
    };
    let (uid, primary_gid) = resolve_user(user)?;
    let gid = match &workers.group {
        Some(group) => resolve_group(group)?,
        None => primary_gid,
    };
    if !euid.is_root() {
        if uid == euid && gid == Gid::effective() {
            // Already that user: nothing to switch.
            return Ok(None);
        }
        bail!(
            "workers.user = {user:?} needs zeno to run as root (it runs as uid {euid}); run it as root, or unset workers.user"
        );
    }
    if uid.is_root() {
        tracing::warn!("workers.user is root: PHP can read the host's secrets");
    }
    Ok(Some(Credentials {
        uid: uid.as_raw(),
        gid: gid.as_raw(),
    }))
}

fn resolve_user(user: &str) -> anyhow::Result<(Uid, Gid)> {
    let found = match user.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(user),
    }
    .with_context(|| format!("looking up workers.user {user:?}"))?;
    match (found, user.parse::<u32>()) {
        (Some(entry), _) => Ok((entry.uid, entry.gid)),
        // A numeric id with no passwd entry (common in containers): its group is its own id.
        (None, Ok(uid)) => Ok((Uid::from_raw(uid), Gid::from_raw(uid))),
        (None, Err(_)) => bail!("workers.user {user:?}: no such user"),
    }
}

fn resolve_group(group: &str) -> anyhow::Result<Gid> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(Gid::from_raw(gid));
    }
    match Group::from_name(group).with_context(|| format!("looking up workers.group {group:?}"))? {
        Some(entry) => Ok(entry.gid),
        None => bail!("workers.group {group:?}: no such group"),
    }
}

/// Whether a database URL carries a password (`scheme://user:secret@host/…`).
pub fn url_has_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.split_once(':').is_some_and(|(_, p)| !p.is_empty()))
}

/// Warns when workers running as `credentials` could read the config file.
pub fn check_config_file(path: &Path, credentials: Option<Credentials>) {
    use std::os::unix::fs::MetadataExt as _;
    let Some(credentials) = credentials else {
        return;
    };
    let Ok(meta) = std::fs::metadata(path) else {
        return;
    };
    let mode = meta.mode();
    let readable = mode & 0o004 != 0
        || (mode & 0o040 != 0 && meta.gid() == credentials.gid)
        || (mode & 0o400 != 0 && meta.uid() == credentials.uid);
    if readable {
        tracing::warn!(
            file = %path.display(),
            mode = format!("{:o}", mode & 0o777),
            "the config file is readable by workers.user, so PHP can read what it holds; chown it to the host's user and chmod 600"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_recognised() {
        assert!(url_has_password("postgres://app:secret@db/app"));
        assert!(url_has_password("mysql://u:p%40ss@h:3306/x?ssl=1"));
        assert!(!url_has_password("postgres://app@db/app"));
        assert!(!url_has_password("postgres://app:@db/app"));
        assert!(!url_has_password("sqlite://zeno.sqlite"));
        assert!(!url_has_password("postgres://db/app?user=a:b@c"));
    }

    #[test]
    fn users_and_groups_resolve_by_name_or_id() {
        let (uid, gid) = resolve_user("root").expect("root");
        assert!(uid.is_root());
        assert_eq!(gid.as_raw(), 0);
        assert_eq!(resolve_user("0").expect("uid 0").0, uid);
        assert_eq!(resolve_user("4242").expect("unnamed id").0.as_raw(), 4242);
        let err = resolve_user("no-such-user-zeno").expect_err("unknown");
        assert!(format!("{err:#}").contains("no such user"), "{err:#}");
        assert_eq!(resolve_group("0").expect("gid").as_raw(), 0);
        assert!(resolve_group("no-such-group-zeno").is_err());
    }

    #[test]
    fn group_without_user_is_refused() {
        let workers = WorkersConfig {
            group: Some("nogroup".into()),
            ..WorkersConfig::default()
        };
        let err = worker_credentials(&workers).expect_err("refused");
        assert!(format!("{err:#}").contains("without workers.user"));
    }
}
