//! Consolidated metadata: a group that keeps a copy of the metadata of every node below it
//! (zarr-python's `consolidate_metadata`: the `.zmetadata` file of a Zarr v2 group, the
//! `consolidated_metadata` member of a Zarr v3 group's `zarr.json`). zarr-python opens a group
//! through that copy when it has one, so an array written below such a group without updating
//! it would keep its old shape there, or be missing from the group.

use super::node_prefix;
use super::target::{read_json, write_json};
use super::Store;
use crate::error::{Error, Result};
use serde_json::Value;
use std::path::Path;

/// Enters the node at `inner` as it now stands, and the groups between it and each group that
/// consolidates, in the consolidated metadata of every group above it that has one. Groups
/// without consolidated metadata are left as they are (nothing is consolidated that was not).
///
/// # Errors
/// Consolidated metadata that is not valid JSON or has no `metadata` object (named with the
/// group and the array `path`), or an unwritable store.
pub(super) fn refresh(store: &Store, inner: &str, path: &Path) -> Result<()> {
    let parts: Vec<&str> = inner.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Ok(());
    }
    // Each update reads the metadata, changes it and writes it back: runs writing arrays into
    // one store at once take turns, or one's entry would be lost to the other's write.
    let _turn = store.dir.as_deref().and_then(StoreLock::take);
    for k in 0..parts.len() {
        let (group, below) = parts.split_at(k);
        let done = refresh_v2(store, group, below).and_then(|_| refresh_v3(store, group, below));
        done.map_err(|e| {
            Error::Invalid(format!(
                "{}: the array is written, but the consolidated metadata of the group /{} \
                 could not be updated: {e}",
                path.display(),
                group.join("/")
            ))
        })?;
    }
    Ok(())
}

/// The store key prefix of the node at the path `parts` (`a/b/`; empty for the root).
fn prefix(parts: &[&str]) -> String {
    node_prefix(&parts.join("/"))
}

/// Zarr v2: `.zmetadata` maps `rel/.zarray`, `rel/.zgroup` and `rel/.zattrs` to those files.
fn refresh_v2(store: &Store, group: &[&str], below: &[&str]) -> Result<()> {
    let key = format!("{}.zmetadata", prefix(group));
    let Some(mut doc) = read_json(store, &key)? else {
        return Ok(());
    };
    let Some(entries) = doc.get_mut("metadata").and_then(Value::as_object_mut) else {
        return Err(Error::Invalid(format!(
            "{key}: no \"metadata\" object in it"
        )));
    };
    for j in 1..=below.len() {
        let rel = below[..j].join("/");
        let node = prefix(&[group, &below[..j]].concat());
        for file in [".zgroup", ".zarray", ".zattrs"] {
            let entry = format!("{rel}/{file}");
            match read_json(store, &format!("{node}{file}"))? {
                Some(v) => entries.insert(entry, v),
                None => entries.remove(&entry),
            };
        }
    }
    write_json(store, &key, &doc)
}

/// Zarr v3: the group's `zarr.json` holds `consolidated_metadata.metadata`, which maps `rel`
/// to the `zarr.json` of the node there.
fn refresh_v3(store: &Store, group: &[&str], below: &[&str]) -> Result<()> {
    let key = format!("{}zarr.json", prefix(group));
    let Some(mut doc) = read_json(store, &key)? else {
        return Ok(());
    };
    if doc.get("node_type").and_then(Value::as_str) != Some("group") {
        return Ok(());
    }
    let Some(consolidated) = doc
        .get_mut("consolidated_metadata")
        .filter(|c| !c.is_null())
    else {
        return Ok(());
    };
    let Some(entries) = consolidated
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
    else {
        return Err(Error::Invalid(format!(
            "{key}: consolidated_metadata has no \"metadata\" object"
        )));
    };
    for j in 1..=below.len() {
        let rel = below[..j].join("/");
        let node = prefix(&[group, &below[..j]].concat());
        match read_json(store, &format!("{node}zarr.json"))? {
            Some(v) => entries.insert(rel, v),
            None => entries.remove(&rel),
        };
    }
    write_json(store, &key, &doc)
}

/// An exclusive `flock` on a local store's directory while held (none where the file system
/// refuses it: the updates then do not wait for each other).
struct StoreLock(#[allow(dead_code)] std::fs::File);

impl StoreLock {
    fn take(dir: &Path) -> Option<StoreLock> {
        let dir = std::fs::File::open(dir).ok()?;
        #[cfg(unix)]
        {
            use std::os::fd::AsRawFd;
            // SAFETY: the descriptor is open for the call; the lock goes when the file closes.
            if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return None;
            }
        }
        Some(StoreLock(dir))
    }
}
