//! One vfio-user connection: send a command (with file descriptors), read its reply, check
//! that it answers this command, and turn every failure into a [`CallError`].
//!
//! Every read and write is bounded by the socket timeouts, so a hung server costs at most
//! one timeout; after any failure that may have desynchronised the stream, the connection
//! is marked broken and every later call fails at once.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

use super::wire::{cmd, flags, Header, HEADER_SIZE};

/// Largest reply body the client accepts (the data of one transfer plus slack for region
/// info capabilities); anything larger is a broken peer.
const MAX_REPLY_BODY: usize = (1 << 20) + 0x10000;
/// File descriptors accepted with one reply.
const MAX_FDS: usize = 8;

/// Why a call failed.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The server is gone or hung: EOF, reset, timeout, or the connection broke earlier.
    Gone(String),
    /// The server answered with an error reply carrying this errno (0 when it sent none).
    Refused(i32),
    /// The reply does not answer the command (wrong id, command or size).
    Protocol(String),
}

/// A decoded reply.
pub(crate) struct Reply {
    pub(crate) body: Vec<u8>,
    pub(crate) fds: Vec<OwnedFd>,
}

/// The client end of the socket.
pub(crate) struct Conn {
    stream: UnixStream,
    next_id: u16,
    broken: Option<String>,
    timeout: Duration,
}

impl Conn {
    /// Wraps a connected stream; `timeout` bounds every read and write.
    pub(crate) fn new(stream: UnixStream, timeout: Duration) -> std::io::Result<Conn> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        Ok(Conn {
            stream,
            next_id: 0,
            broken: None,
            timeout,
        })
    }

    /// Sends `command` with `body` and `fds`, and returns its reply.
    pub(crate) fn call(
        &mut self,
        command: u16,
        body: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply, CallError> {
        if let Some(why) = &self.broken {
            return Err(CallError::Gone(format!(
                "the connection broke earlier: {why}"
            )));
        }
        let result = self.exchange(command, body, fds);
        match &result {
            Err(CallError::Gone(why)) | Err(CallError::Protocol(why)) => {
                // The stream position is unknown now: never reuse it.
                self.broken = Some(why.clone());
                let _ = self.stream.shutdown(std::net::Shutdown::Both);
            }
            _ => {}
        }
        result
    }

    fn exchange(
        &mut self,
        command: u16,
        body: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<Reply, CallError> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let size = u32::try_from(HEADER_SIZE + body.len()).map_err(|_| {
            CallError::Protocol(format!("a {}-byte message cannot be sent", body.len()))
        })?;
        let header = Header {
            id,
            command,
            size,
            flags: flags::COMMAND,
            error: 0,
        }
        .encode();
        self.send(&header, body, fds)?;

        let mut raw = [0u8; HEADER_SIZE];
        let mut received = self.recv_with_fds(&mut raw)?;
        let reply = Header::decode(&raw);
        if !reply.is_reply() || reply.id != id || reply.command != command {
            return Err(CallError::Protocol(format!(
                "expected the reply to {} id {id}, got command {} id {} flags {:#x}",
                cmd::name(command),
                reply.command,
                reply.id,
                reply.flags
            )));
        }
        let body_len = (reply.size as usize)
            .checked_sub(HEADER_SIZE)
            .filter(|&n| n <= MAX_REPLY_BODY)
            .ok_or_else(|| {
                CallError::Protocol(format!("reply size {} is impossible", reply.size))
            })?;
        let mut body = vec![0u8; body_len];
        let mut filled = 0;
        while filled < body_len {
            let (n, more) = self.recv_some(&mut body[filled..])?;
            filled += n;
            received.extend(more);
        }
        if reply.is_error() {
            return Err(CallError::Refused(reply.error as i32));
        }
        Ok(Reply {
            body,
            fds: received,
        })
    }

    fn send(
        &mut self,
        header: &[u8],
        body: &[u8],
        fds: &[BorrowedFd<'_>],
    ) -> Result<(), CallError> {
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let total = header.len() + body.len();
        let mut sent = 0usize;
        while sent < total {
            let (h, b) = if sent < header.len() {
                (&header[sent..], body)
            } else {
                (&header[..0], &body[sent - header.len()..])
            };
            let iov = [IoSlice::new(h), IoSlice::new(b)];
            let rights = [ControlMessage::ScmRights(&raw)];
            // Descriptors go with the first byte only.
            let cmsgs: &[ControlMessage<'_>] = if sent == 0 && !raw.is_empty() {
                &rights
            } else {
                &[]
            };
            match sendmsg::<()>(
                self.stream.as_raw_fd(),
                &iov,
                cmsgs,
                MsgFlags::MSG_NOSIGNAL,
                None,
            ) {
                Ok(0) => return Err(CallError::Gone("the socket accepted no bytes".into())),
                Ok(n) => sent += n,
                Err(Errno::EINTR) => {}
                Err(e) => return Err(self.io_gone("sending", e)),
            }
        }
        Ok(())
    }

    /// Fills `buf` exactly, collecting any descriptors that arrive with it.
    fn recv_with_fds(&mut self, buf: &mut [u8]) -> Result<Vec<OwnedFd>, CallError> {
        let mut fds = Vec::new();
        let mut filled = 0;
        while filled < buf.len() {
            let (n, more) = self.recv_some(&mut buf[filled..])?;
            filled += n;
            fds.extend(more);
        }
        Ok(fds)
    }

    fn recv_some(&mut self, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), CallError> {
        let mut cmsg = nix::cmsg_space!([RawFd; MAX_FDS]);
        let mut iov = [IoSliceMut::new(buf)];
        loop {
            match recvmsg::<()>(
                self.stream.as_raw_fd(),
                &mut iov,
                Some(&mut cmsg),
                MsgFlags::MSG_CMSG_CLOEXEC,
            ) {
                Ok(msg) => {
                    let mut fds = Vec::new();
                    if let Ok(cmsgs) = msg.cmsgs() {
                        for c in cmsgs {
                            if let ControlMessageOwned::ScmRights(list) = c {
                                // SAFETY: the kernel just installed these descriptors in
                                // this process for us (SCM_RIGHTS); nothing else owns them.
                                fds.extend(
                                    list.into_iter()
                                        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                                );
                            }
                        }
                    }
                    if msg.bytes == 0 {
                        return Err(CallError::Gone("the server closed the connection".into()));
                    }
                    return Ok((msg.bytes, fds));
                }
                Err(Errno::EINTR) => {}
                Err(e) => return Err(self.io_gone("waiting for the reply", e)),
            }
        }
    }

    fn io_gone(&self, what: &str, e: Errno) -> CallError {
        match e {
            Errno::EAGAIN => CallError::Gone(format!(
                "no progress {what} within {:?}: the server is hung or gone",
                self.timeout
            )),
            Errno::EPIPE | Errno::ECONNRESET => CallError::Gone(format!(
                "{what}: the server closed the connection ({})",
                std::io::Error::from(e)
            )),
            other => CallError::Gone(format!("{what}: {}", std::io::Error::from(other))),
        }
    }
}
