//! Session resources (screenshots, files): bytes with a content type, addressed by
//! session, bucket and key. The filesystem implementation keeps them under the data
//! directory; an object store can implement the same trait.

use std::path::{Component, Path, PathBuf};

use agentd_domain::SessionId;
use async_trait::async_trait;

use crate::{Result, StoreError};

#[derive(Clone, Debug, PartialEq)]
pub struct Blob {
    pub content_type: String,
    pub bytes: Vec<u8>,
}

#[async_trait]
pub trait BlobStore: Send + Sync + 'static {
    async fn put(&self, session: SessionId, bucket: &str, key: &str, blob: Blob) -> Result<()>;
    async fn get(&self, session: SessionId, bucket: &str, key: &str) -> Result<Option<Blob>>;
    /// Deletes every blob of one bucket of a session; deleting nothing is not an error.
    async fn delete_bucket(&self, session: SessionId, bucket: &str) -> Result<()>;
    /// The sessions that hold at least one blob in `bucket`.
    async fn sessions_with(&self, bucket: &str) -> Result<Vec<SessionId>>;
}

/// `<root>/<session>/<bucket>/<key>`, with the content type in a sidecar file.
pub struct FsBlobStore {
    root: PathBuf,
}

impl FsBlobStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The path of a blob, or `None` when bucket or key would leave the session's folder.
    fn path(&self, session: SessionId, bucket: &str, key: &str) -> Option<PathBuf> {
        let is_plain = |p: &str| {
            !p.is_empty()
                && Path::new(p)
                    .components()
                    .all(|c| matches!(c, Component::Normal(_)))
        };
        if !is_plain(bucket) || bucket.contains('/') || !is_plain(key) {
            return None;
        }
        Some(self.root.join(session.to_string()).join(bucket).join(key))
    }
}

fn io_error(e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("blob store: {e}"))
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put(&self, session: SessionId, bucket: &str, key: &str, blob: Blob) -> Result<()> {
        let path = self
            .path(session, bucket, key)
            .ok_or_else(|| StoreError::Backend(format!("invalid resource name {bucket}/{key}")))?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(io_error)?;
        }
        let type_path = path.with_extension("content-type");
        tokio::fs::write(&path, &blob.bytes)
            .await
            .map_err(io_error)?;
        tokio::fs::write(&type_path, blob.content_type.as_bytes())
            .await
            .map_err(io_error)?;
        Ok(())
    }

    async fn get(&self, session: SessionId, bucket: &str, key: &str) -> Result<Option<Blob>> {
        let Some(path) = self.path(session, bucket, key) else {
            return Ok(None);
        };
        let bytes = match tokio::fs::read(&path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error(e)),
        };
        let content_type = tokio::fs::read_to_string(path.with_extension("content-type"))
            .await
            .unwrap_or_else(|_| "application/octet-stream".to_string());
        Ok(Some(Blob {
            content_type,
            bytes,
        }))
    }

    async fn delete_bucket(&self, session: SessionId, bucket: &str) -> Result<()> {
        let Some(dir) = self
            .path(session, bucket, "x")
            .and_then(|p| p.parent().map(Path::to_path_buf))
        else {
            return Ok(());
        };
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_error(e)),
            _ => Ok(()),
        }
    }

    async fn sessions_with(&self, bucket: &str) -> Result<Vec<SessionId>> {
        let mut found = Vec::new();
        let mut entries = match tokio::fs::read_dir(&self.root).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(found),
            Err(e) => return Err(io_error(e)),
        };
        while let Some(entry) = entries.next_entry().await.map_err(io_error)? {
            let Some(session) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<SessionId>().ok())
            else {
                continue;
            };
            if tokio::fs::metadata(entry.path().join(bucket))
                .await
                .is_ok_and(|m| m.is_dir())
            {
                found.push(session);
            }
        }
        Ok(found)
    }
}
