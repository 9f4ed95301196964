//! A label area kept in a file (a label image, `ndctl read-labels -o` output).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::{check_transfer, Lsa, LsaError};

/// A label area backed by a regular file; its size is the file's size at open.
#[derive(Debug)]
pub struct FileLsa {
    file: File,
    path: PathBuf,
    size: u64,
    writable: bool,
}

impl FileLsa {
    /// Opens an existing image read-write (or read-only when `writable` is false).
    pub fn open(path: &Path, writable: bool) -> Result<Self, LsaError> {
        let io_err = |source: io::Error| LsaError::Io {
            op: "open",
            offset: 0,
            what: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(path)
            .map_err(io_err)?;
        let size = file.metadata().map_err(io_err)?.len();
        Ok(Self {
            file,
            path: path.to_path_buf(),
            size,
            writable,
        })
    }

    /// Creates (or truncates) an image of `size` zero bytes.
    pub fn create(path: &Path, size: u64) -> Result<Self, LsaError> {
        let io_err = |source: io::Error| LsaError::Io {
            op: "create",
            offset: 0,
            what: path.display().to_string(),
            source,
        };
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_err)?;
        file.set_len(size).map_err(io_err)?;
        Ok(Self {
            file,
            path: path.to_path_buf(),
            size,
            writable: true,
        })
    }

    /// Flushes written bytes to stable storage (`fdatasync`).
    pub fn sync(&self) -> Result<(), LsaError> {
        self.file.sync_data().map_err(|source| LsaError::Io {
            op: "sync",
            offset: 0,
            what: self.describe(),
            source,
        })
    }
}

impl Lsa for FileLsa {
    fn size(&self) -> u64 {
        self.size
    }

    fn max_xfer(&self) -> u64 {
        // One pread/pwrite per megabyte keeps chunking visible without costing much.
        1 << 20
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), LsaError> {
        check_transfer(offset, buf.len(), self.size, self.max_xfer())?;
        self.file
            .read_exact_at(buf, offset)
            .map_err(|source| LsaError::Io {
                op: "read",
                offset,
                what: self.describe(),
                source,
            })
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), LsaError> {
        if !self.writable {
            return Err(LsaError::ReadOnly {
                what: self.describe(),
                offset,
            });
        }
        check_transfer(offset, data.len(), self.size, self.max_xfer())?;
        self.file
            .write_all_at(data, offset)
            .map_err(|source| LsaError::Io {
                op: "write",
                offset,
                what: self.describe(),
                source,
            })
    }

    fn describe(&self) -> String {
        format!("label image {}", self.path.display())
    }
}
