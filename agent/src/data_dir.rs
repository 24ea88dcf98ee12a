//! Why the data dir cannot be used, said the way an operator fixes it: the path once, what is
//! wrong ("permission denied", "is a file"), who owns it and who asks, and what to run.

use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// One sentence for `error`, met creating, locking or writing in the data dir `dir`.
pub fn explain(dir: &Path, error: &std::io::Error) -> String {
    let shown = dir.display();
    if dir.exists() && !dir.is_dir() {
        return format!(
            "store.data_dir {shown} is a file, not a directory: point store.data_dir at a directory (the package uses /var/lib/loyalty-agent), or move the file away"
        );
    }
    // A file where a parent directory should be: the data dir cannot be created under it.
    if let Some(file) = dir
        .ancestors()
        .skip(1)
        .find(|p| p.exists())
        .filter(|p| !p.is_dir())
    {
        return format!(
            "store.data_dir {shown} cannot be created: {} is a file, not a directory; point store.data_dir elsewhere, or move the file away",
            file.display()
        );
    }
    match error.kind() {
        ErrorKind::PermissionDenied => {
            // The nearest existing ancestor is the one whose permissions refused.
            let owned = dir.ancestors().find(|p| p.exists()).unwrap_or(dir);
            let whom = nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map_or_else(|| format!("uid {}", nix::unistd::geteuid()), |u| u.name);
            let owner = match std::fs::metadata(owned) {
                Ok(m) => format!(
                    "{} is owned by {}:{} with mode {:o}",
                    owned.display(),
                    user_name(m.uid()),
                    group_name(m.gid()),
                    m.mode() & 0o7777
                ),
                Err(_) => format!("{} cannot be inspected", owned.display()),
            };
            format!(
                "permission denied on store.data_dir {shown}: {owner}, and this command runs as {whom}. Run it as the agent's user (`sudo -u loyalty loyalty-agent ...`), or give that user the directory (`sudo chown -R loyalty:loyalty {shown}`)"
            )
        }
        ErrorKind::ReadOnlyFilesystem => format!(
            "store.data_dir {shown} is on a read-only file system: the ledger needs a writable disk that survives reboots"
        ),
        ErrorKind::StorageFull => format!(
            "the disk holding store.data_dir {shown} is full: free space (old backups in {shown}/backups) and start again"
        ),
        _ => format!("store.data_dir {shown}: {error}"),
    }
}

fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| uid.to_string(), |u| u.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map_or_else(|| gid.to_string(), |g| g.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_named_as_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("data");
        std::fs::write(&file, "").unwrap();
        let e = std::fs::create_dir_all(&file).unwrap_err();
        let text = explain(&file, &e);
        assert!(text.contains("is a file, not a directory"), "{text}");
        assert!(!text.contains("File exists"), "{text}");
    }

    #[test]
    fn a_file_in_the_way_of_a_parent_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let data = file.join("data");
        let e = std::fs::create_dir_all(&data).unwrap_err();
        let text = explain(&data, &e);
        assert!(
            text.contains(&format!("{} is a file, not a directory", file.display())),
            "{text}"
        );
    }

    #[test]
    fn permission_denied_says_so_and_names_owner_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        // Root is never refused, so the refusal is the kernel's answer as a non-root agent
        // would get it.
        let e = std::io::Error::from(ErrorKind::PermissionDenied);
        let text = explain(&data, &e);
        let me = user_name(nix::unistd::geteuid().as_raw());
        assert!(
            text.starts_with("permission denied on store.data_dir"),
            "{text}"
        );
        assert!(
            text.contains(&format!("{} is owned by {me}:", dir.path().display())),
            "{text}"
        );
        assert!(text.contains("chown -R loyalty:loyalty"), "{text}");
        assert_eq!(
            text.matches(&data.display().to_string()).count(),
            2,
            "{text}"
        );
    }
}
