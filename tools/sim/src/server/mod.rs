//! The simulated card as a vfio-user server (`ocxlpmem-sim serve --socket PATH`).
//!
//! The protocol is implemented here (not with the `vfio_user` crate's server, which sends
//! backend errors with errno 0, desynchronises on a REGION_WRITE to a bad region and panics
//! on a VERSION without NUL). The server:
//! * presents function 1 of the card: config space as region 7, the global MMIO as BAR 0
//!   (the register file trapped; command blocks and data buffers mmap-able when the card
//!   was built with `mmap_command_areas`), the LPC memory as BAR 4, mmap-able through its
//!   memfd (every mmap-able region is sent with a sparse-mmap capability and its fd);
//! * answers refused accesses with an error reply carrying a real errno (EINVAL for
//!   register accesses that are not 8 bytes wide and aligned);
//! * serves one client at a time, one after the other, for ever; a client that
//!   disconnects or dies mid-command leaves the card as it was (spec §10);
//! * stops when the stop descriptor becomes readable (the CLI wires SIGTERM/SIGINT to it
//!   through a signalfd) or after an optional idle time, and removes its socket.

mod card;
pub mod cli;
mod conn;
mod handle;
mod model;
mod wire;

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::linux::fs::MetadataExt;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tracing::{info, warn};

pub use self::model::{DeviceModel, RegionDesc};
use conn::End;

/// An error of the server itself (client misbehaviour only ends that client's connection).
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Another server answers on the socket path.
    #[error("{path} is in use by a running server; stop it or choose another --socket")]
    InUse {
        /// The socket path.
        path: PathBuf,
    },
    /// The path exists and is not a socket; it is never deleted.
    #[error("{path} exists and is not a socket; remove it or choose another --socket")]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// A socket operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The socket path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

/// Why [`Server::run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServeEnd {
    /// The stop descriptor fired.
    Stopped,
    /// No client and no message for the idle time.
    Idle,
}

/// A listening vfio-user socket. Dropping it removes the socket file (if it is still
/// the one this server created).
#[derive(Debug)]
pub struct Server {
    listener: UnixListener,
    path: PathBuf,
    inode: Option<(u64, u64)>,
}

impl Server {
    /// Binds `path`. A stale socket left by a dead server is replaced; a live one, or a
    /// path that is not a socket, is an error.
    pub fn bind(path: impl AsRef<Path>) -> Result<Server, ServerError> {
        let path = path.as_ref().to_path_buf();
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if !meta.file_type().is_socket() {
                return Err(ServerError::NotASocket { path });
            }
            if UnixStream::connect(&path).is_ok() {
                return Err(ServerError::InUse { path });
            }
            warn!(path = %path.display(), "replacing a stale socket");
            std::fs::remove_file(&path).map_err(|source| ServerError::Io {
                op: "removing the stale socket",
                path: path.clone(),
                source,
            })?;
        }
        let listener = UnixListener::bind(&path).map_err(|source| ServerError::Io {
            op: "binding",
            path: path.clone(),
            source,
        })?;
        let inode = std::fs::symlink_metadata(&path)
            .ok()
            .map(|m| (m.st_dev(), m.st_ino()));
        Ok(Server {
            listener,
            path,
            inode,
        })
    }

    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Serves clients one after the other until `stop` becomes readable or, with
    /// `idle = Some(d)`, until `d` passes without a connection or a message.
    pub fn run(
        &self,
        model: &dyn DeviceModel,
        stop: BorrowedFd<'_>,
        idle: Option<Duration>,
    ) -> Result<ServeEnd, ServerError> {
        info!(path = %self.path.display(), "vfio-user server listening");
        let mut clients = 0u64;
        loop {
            let deadline = idle.map(|d| Instant::now() + d);
            match conn::wait_readable(self.listener.as_fd(), stop, deadline) {
                Ok(true) => {}
                Ok(false) => return Ok(ServeEnd::Idle),
                Err(End::Stop) => return Ok(ServeEnd::Stopped),
                Err(other) => {
                    return Err(ServerError::Io {
                        op: "waiting for clients on",
                        path: self.path.clone(),
                        source: io::Error::other(format!("{other:?}")),
                    })
                }
            }
            let stream = match self.listener.accept() {
                Ok((s, _)) => s,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::WouldBlock
                    ) =>
                {
                    continue
                }
                Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => continue,
                Err(source) => {
                    return Err(ServerError::Io {
                        op: "accepting on",
                        path: self.path.clone(),
                        source,
                    })
                }
            };
            clients += 1;
            info!(client = clients, "client connected");
            match conn::serve(model, &stream, stop, idle) {
                End::Closed => info!(client = clients, "client disconnected"),
                End::Broken(why) => warn!(client = clients, %why, "client connection dropped"),
                End::Stop => return Ok(ServeEnd::Stopped),
                End::Idle => {
                    info!(client = clients, "client idle for too long");
                    return Ok(ServeEnd::Idle);
                }
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Remove the socket only if it is still ours (a newer server may have replaced it).
        let ours = std::fs::symlink_metadata(&self.path)
            .ok()
            .map(|m| (m.st_dev(), m.st_ino()))
            .is_some_and(|id| Some(id) == self.inode);
        if ours {
            if let Err(e) = std::fs::remove_file(&self.path) {
                warn!(path = %self.path.display(), error = %e, "could not remove the socket");
            }
        }
    }
}

#[cfg(test)]
mod tests;
