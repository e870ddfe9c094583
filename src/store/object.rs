//! Zarr stores in object storage (`s3://bucket/path/x.zarr`), through zarrs' `object_store`
//! support: an S3 client configured from the environment (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, and for S3-compatible servers such as MinIO
//! `AWS_ENDPOINT_URL` and `AWS_ALLOW_HTTP=true`), driven synchronously from the block tasks on
//! a small tokio runtime of its own.
//!
//! Objects are written whole by one request, so a reader sees a chunk whole or not at all,
//! which is what a file's write-aside-and-rename gives on a file system.

use crate::error::{Error, Result};
use std::sync::{Arc, OnceLock};
use zarrs::storage::storage_adapter::async_to_sync::{
    AsyncToSyncBlockOn, AsyncToSyncStorageAdapter,
};
use zarrs::storage::ReadableWritableListableStorage;

/// The runtime the S3 client's requests run on.
fn runtime() -> Result<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<std::result::Result<tokio::runtime::Runtime, String>> =
        OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("tessera-s3")
                .enable_all()
                .build()
                .map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::Unsupported(format!("cannot start the S3 client's runtime: {e}")))
}

/// Runs the store's futures to completion from a (non-async) block task.
struct BlockOn(tokio::runtime::Handle);

impl AsyncToSyncBlockOn for BlockOn {
    fn block_on<F: core::future::Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
}

/// Whether `path` names object storage rather than a local directory.
pub fn is_object_url(path: &str) -> bool {
    path.starts_with("s3://")
}

/// The store rooted at `url` (`s3://bucket/prefix`): keys are relative to the prefix.
///
/// # Errors
/// A URL without a bucket, or a client that cannot be configured from the environment.
pub(crate) fn open(url: &str) -> Result<ReadableWritableListableStorage> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| Error::Invalid(format!("{url}: not an s3:// URL")))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::Invalid(format!(
            "{url}: name the bucket, as s3://bucket/path/x.zarr"
        )));
    }
    let s3 = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| {
            Error::Invalid(format!(
                "{url}: cannot configure the S3 client from the AWS_* variables: {e}"
            ))
        })?;
    let prefixed = object_store::prefix::PrefixStore::new(s3, prefix.trim_end_matches('/'));
    let store = zarrs_object_store::AsyncObjectStore::new(prefixed);
    let handle = runtime()?.handle().clone();
    Ok(Arc::new(AsyncToSyncStorageAdapter::new(
        Arc::new(store),
        BlockOn(handle),
    )))
}
