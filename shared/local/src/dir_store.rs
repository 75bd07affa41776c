//! The directory object store: keys are relative paths under a root folder. Every object is
//! written to a hidden temporary file beside its final name and renamed into place when
//! finished, so no half-written part or manifest is ever visible under its key.

use async_trait::async_trait;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use sluice_core::ports::{ByteStream, KeyStream, ObjectMeta, ObjectStore, ObjectWriter};
use sluice_core::BoxError;

use crate::error::Error;

pub struct DirectoryStore {
    root: PathBuf,
}

impl DirectoryStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirectoryStore { root: root.into() }
    }

    fn path(&self, key: &str) -> Result<PathBuf, Error> {
        let ok = !key.is_empty()
            && !key.starts_with('/')
            && !key.contains('\\')
            && key.split('/').all(|p| !p.is_empty() && p != "." && p != "..");
        if !ok {
            return Err(Error::InvalidKey { key: key.to_string() });
        }
        Ok(self.root.join(key))
    }
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { op, path: path.to_path_buf(), source }
}

/// A hidden temporary name in the same folder, so the final rename is atomic.
fn temp_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    path.with_file_name(format!(".{name}.{}.tmp", &tag[..8]))
}

fn is_temp(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

fn sync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io("syncing folder", dir))
}

struct DirWriter {
    temp: PathBuf,
    path: PathBuf,
    file: Option<File>,
}

#[async_trait]
impl ObjectWriter for DirWriter {
    async fn write(&mut self, chunk: &[u8]) -> Result<(), BoxError> {
        // A local write of one chunk lands in the page cache in microseconds; handing it to a
        // blocking thread would cost more than it saves.
        let Some(file) = self.file.as_mut() else { return Ok(()) };
        file.write_all(chunk).map_err(io("writing", &self.path))?;
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<u64, BoxError> {
        let Some(file) = self.file.take() else { return Ok(0) };
        let done = file
            .metadata()
            .map_err(io("reading size of", &self.temp))
            // Durable before visible: the manifest that lists this part may be committed next.
            .and_then(|m| file.sync_data().map(|_| m.len()).map_err(io("syncing", &self.path)))
            .and_then(|size| {
                drop(file);
                fs::rename(&self.temp, &self.path).map(|_| size).map_err(io("renaming into place", &self.path))
            });
        if done.is_err() {
            let _ = fs::remove_file(&self.temp);
        }
        Ok(done?)
    }

    async fn abort(mut self: Box<Self>) -> Result<(), BoxError> {
        self.file.take();
        match fs::remove_file(&self.temp) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("removing", &self.temp)(e).into()),
        }
    }
}

impl Drop for DirWriter {
    fn drop(&mut self) {
        // Neither finished nor aborted (a failure between the two): leave nothing behind.
        if self.file.take().is_some() {
            let _ = fs::remove_file(&self.temp);
        }
    }
}

#[async_trait]
impl ObjectStore for DirectoryStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn create(&self, key: &str, _meta: &ObjectMeta) -> Result<Box<dyn ObjectWriter>, BoxError> {
        let path = self.path(key)?;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(io("creating folder", dir))?;
        }
        let temp = temp_path(&path);
        let file = File::create(&temp).map_err(io("creating", &temp))?;
        Ok(Box::new(DirWriter { temp, path, file: Some(file) }))
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, _meta: &ObjectMeta) -> Result<(), BoxError> {
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        fs::create_dir_all(&dir).map_err(io("creating folder", &dir))?;
        let temp = temp_path(&path);
        let written = File::create(&temp)
            .and_then(|mut f| f.write_all(&bytes).and_then(|_| f.sync_all()))
            .map_err(io("writing", &path))
            .and_then(|_| fs::rename(&temp, &path).map_err(io("renaming into place", &path)));
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(e.into());
        }
        sync_dir(&dir)?;
        Ok(())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BoxError> {
        let path = self.path(key)?;
        match fs::read(&path) {
            Ok(b) => Ok(Some(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path)(e).into()),
        }
    }

    async fn get_tagged(&self, key: &str) -> Result<Option<(Vec<u8>, String)>, BoxError> {
        Ok(self.get(key).await?.map(|bytes| {
            let tag = sluice_core::ports::content_tag(&bytes);
            (bytes, tag)
        }))
    }

    async fn read(&self, key: &str) -> Result<Option<ByteStream>, BoxError> {
        use futures::StreamExt;
        use std::io::Read;
        let path = self.path(key)?;
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io("reading", &path)(e).into()),
        };
        // Reads run on the blocking pool, a chunk at a time, so a large part never stalls the
        // runtime nor sits in memory whole.
        let stream = futures::stream::unfold(Some((file, path)), |state| async move {
            let (mut file, path) = state?;
            let read = tokio::task::spawn_blocking(move || {
                let mut chunk = vec![0u8; 1 << 20];
                let n = file.read(&mut chunk);
                (file, chunk, n)
            })
            .await;
            match read {
                Ok((_, _, Ok(0))) => None,
                Ok((file, mut chunk, Ok(n))) => {
                    chunk.truncate(n);
                    Some((Ok(chunk), Some((file, path))))
                }
                Ok((_, _, Err(e))) => Some((Err(Error::Io { op: "reading", path, source: e }.into()), None)),
                Err(e) => Some((Err(e.into()), None)),
            }
        });
        Ok(Some(stream.boxed()))
    }

    async fn delete(&self, key: &str) -> Result<(), BoxError> {
        let path = self.path(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io("removing", &path)(e).into()),
        }
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<u64, BoxError> {
        let keys = self.list(prefix).await?;
        for key in &keys {
            self.delete(key).await?;
        }
        let dir = self.path(prefix.trim_end_matches('/'))?;
        if dir.is_dir() {
            // Temporary files of a dead writer go too.
            fs::remove_dir_all(&dir).map_err(io("removing", &dir))?;
        }
        Ok(keys.len() as u64)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, BoxError> {
        let prefix = prefix.trim_end_matches('/');
        let start = if prefix.is_empty() { self.root.clone() } else { self.path(prefix)? };
        let mut keys = Vec::new();
        let mut stack = vec![start];
        while let Some(dir) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => continue,
                Err(e) => return Err(io("listing", &dir)(e).into()),
            };
            for entry in entries {
                let entry = entry.map_err(io("listing", &dir))?;
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    stack.push(path);
                } else if !is_temp(&name) {
                    if let Ok(rel) = path.strip_prefix(&self.root) {
                        keys.push(rel.to_string_lossy().replace('\\', "/"));
                    }
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    /// A walk that reads one folder at a time, in the order `list` sorts keys: each folder's
    /// entries are ordered by name, a subfolder as its name with a `/` (the prefix its keys
    /// share), so a run folder's thousand siblings are held as names, never the whole tree.
    fn list_stream<'a>(&'a self, prefix: &'a str) -> KeyStream<'a> {
        let prefix = prefix.trim_end_matches('/');
        let start = if prefix.is_empty() { Ok(self.root.clone()) } else { self.path(prefix) };
        let walk = start.map(|dir| Walk { root: self.root.clone(), pending: vec![], started: Some(dir) });
        match walk {
            Ok(walk) => Box::pin(futures::stream::iter(walk)),
            Err(e) => Box::pin(futures::stream::iter([Err(e.into())])),
        }
    }
}

/// The lazy walk behind `DirectoryStore::list_stream`: a stack of folders' sorted entries.
struct Walk {
    root: PathBuf,
    /// Per open folder, its entries not yet visited, last first.
    pending: Vec<Vec<(String, PathBuf, bool)>>,
    /// The folder to open first.
    started: Option<PathBuf>,
}

impl Walk {
    /// A folder's entries, sorted as their keys sort, reversed so the first pops first.
    fn open(&mut self, dir: &Path) -> Result<(), BoxError> {
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory) => {
                return Ok(())
            }
            Err(e) => return Err(io("listing", dir)(e).into()),
        };
        let mut found = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io("listing", dir))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                found.push((format!("{name}/"), path, true));
            } else if !is_temp(&name) {
                found.push((name, path, false));
            }
        }
        found.sort_by(|a, b| b.0.cmp(&a.0));
        self.pending.push(found);
        Ok(())
    }
}

impl Iterator for Walk {
    type Item = Result<String, BoxError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(dir) = self.started.take() {
            if let Err(e) = self.open(&dir) {
                return Some(Err(e));
            }
        }
        loop {
            let top = self.pending.last_mut()?;
            let Some((_, path, is_dir)) = top.pop() else {
                self.pending.pop();
                continue;
            };
            if is_dir {
                if let Err(e) = self.open(&path) {
                    self.pending.clear();
                    return Some(Err(e));
                }
                continue;
            }
            if let Ok(rel) = path.strip_prefix(&self.root) {
                return Some(Ok(rel.to_string_lossy().replace('\\', "/")));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unfinished_object_is_invisible_and_leaves_nothing_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirectoryStore::new(dir.path());
        let mut w = store.create("a/b/part-00000.csv", &ObjectMeta::default()).await.unwrap();
        w.write(b"hello").await.unwrap();
        assert_eq!(store.list("").await.unwrap(), Vec::<String>::new());
        assert_eq!(store.get("a/b/part-00000.csv").await.unwrap(), None);
        drop(w);
        assert_eq!(fs::read_dir(dir.path().join("a/b")).unwrap().count(), 0);

        let mut w = store.create("a/b/part-00000.csv", &ObjectMeta::default()).await.unwrap();
        w.write(b"hello").await.unwrap();
        assert_eq!(w.finish().await.unwrap(), 5);
        assert_eq!(store.list("a").await.unwrap(), vec!["a/b/part-00000.csv".to_string()]);
        assert_eq!(store.delete_prefix("a/b").await.unwrap(), 1);
        assert!(store.list("").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn keys_cannot_escape_the_root() {
        let store = DirectoryStore::new("/tmp/x");
        for key in ["../etc/passwd", "/abs", "a//b", "a/./b", ""] {
            assert!(store.get(key).await.is_err(), "{key}");
        }
    }
}
