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
        let bucket = self.bucket_dir(session, bucket)?;
        is_plain(key).then(|| bucket.join(key))
    }

    /// The folder of one bucket of a session, or `None` when the name would leave it.
    fn bucket_dir(&self, session: SessionId, bucket: &str) -> Option<PathBuf> {
        (is_plain(bucket) && !bucket.contains('/'))
            .then(|| self.root.join(session.to_string()).join(bucket))
    }
}

/// A relative path of plain names: no `..`, no root, not empty.
fn is_plain(path: &str) -> bool {
    !path.is_empty()
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
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
        let Some(dir) = self.bucket_dir(session, bucket) else {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn blob() -> Blob {
        Blob {
            content_type: "image/jpeg".into(),
            bytes: vec![0xFF, 0xD8],
        }
    }

    #[tokio::test]
    async fn a_bucket_is_listed_while_it_holds_blobs_and_deleted_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsBlobStore::new(dir.path().join("blobs"));
        assert!(store.sessions_with("screenshots").await.unwrap().is_empty());
        let (a, b) = (SessionId::new(), SessionId::new());
        store.put(a, "screenshots", "1.jpg", blob()).await.unwrap();
        store.put(a, "screenshots", "2.jpg", blob()).await.unwrap();
        store.put(b, "files", "x.txt", blob()).await.unwrap();
        assert_eq!(store.sessions_with("screenshots").await.unwrap(), vec![a]);

        store.delete_bucket(a, "screenshots").await.unwrap();
        assert!(
            store
                .get(a, "screenshots", "1.jpg")
                .await
                .unwrap()
                .is_none()
        );
        assert!(store.sessions_with("screenshots").await.unwrap().is_empty());
        // Other buckets stay; deleting nothing is fine; names that leave the folder do nothing.
        assert!(store.get(b, "files", "x.txt").await.unwrap().is_some());
        store.delete_bucket(a, "screenshots").await.unwrap();
        store.delete_bucket(b, "..").await.unwrap();
        assert!(store.get(b, "files", "x.txt").await.unwrap().is_some());
    }
}
