//! One client connection: wait for a message (or the stop signal, or the idle deadline),
//! read it whole with its descriptors, handle it, send the reply.
//!
//! A client that disconnects or is killed mid-message ends only its connection: the card
//! keeps its state (spec §10), the session's eventfds are closed.

use std::io::{IoSlice, IoSliceMut};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use tracing::{debug, warn};

use super::handle::{Session, MAX_DATA_XFER, MAX_MSG_FDS};
use super::model::DeviceModel;
use super::wire::{Header, HEADER_SIZE};

/// Once the first byte of a message is in, the rest must follow within this time.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(2);
/// Largest message accepted: one transfer plus its access header, with slack.
const MAX_MESSAGE: usize = MAX_DATA_XFER as usize + 0x1000;

/// How a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum End {
    /// The client closed the socket (or died) between messages.
    Closed,
    /// The stop descriptor became readable (SIGTERM).
    Stop,
    /// Nothing arrived before the idle deadline.
    Idle,
    /// The client broke the protocol or died mid-message.
    Broken(String),
}

/// Result of waiting for the next message.
enum Wait {
    Readable,
    Stop,
    Idle,
}

/// Waits until `fd` is readable, `stop` is readable, or `deadline` passes.
pub(crate) fn wait_readable(
    fd: BorrowedFd<'_>,
    stop: BorrowedFd<'_>,
    deadline: Option<Instant>,
) -> Result<bool, End> {
    match wait(fd, stop, deadline) {
        Ok(Wait::Readable) => Ok(true),
        Ok(Wait::Stop) => Err(End::Stop),
        Ok(Wait::Idle) => Ok(false),
        Err(e) => Err(End::Broken(format!("poll: {e}"))),
    }
}

fn wait(
    fd: BorrowedFd<'_>,
    stop: BorrowedFd<'_>,
    deadline: Option<Instant>,
) -> Result<Wait, Errno> {
    loop {
        let timeout = match deadline {
            None => PollTimeout::NONE,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Round up so the wait never ends just before the deadline.
                let ms = left.as_millis().saturating_add(1);
                PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
            }
        };
        let mut fds = [
            PollFd::new(fd, PollFlags::POLLIN),
            PollFd::new(stop, PollFlags::POLLIN),
        ];
        match poll(&mut fds, timeout) {
            Ok(_) => {
                let ready = |p: &PollFd<'_>| p.revents().is_some_and(|r| !r.is_empty());
                if fds.get(1).is_some_and(ready) {
                    return Ok(Wait::Stop);
                }
                if fds.first().is_some_and(ready) {
                    return Ok(Wait::Readable);
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Ok(Wait::Idle);
                }
            }
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e),
        }
    }
}

/// Serves `stream` until it closes, breaks, the stop descriptor fires, or it stays idle
/// for `idle`.
pub(crate) fn serve(
    model: &dyn DeviceModel,
    stream: &UnixStream,
    stop: BorrowedFd<'_>,
    idle: Option<Duration>,
) -> End {
    if let Err(e) = stream
        .set_read_timeout(Some(MESSAGE_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(MESSAGE_TIMEOUT)))
    {
        return End::Broken(format!("setting socket timeouts: {e}"));
    }
    let mut session = Session::default();
    loop {
        let deadline = idle.map(|d| Instant::now() + d);
        match wait_readable(stream.as_fd(), stop, deadline) {
            Ok(true) => {}
            Ok(false) => return End::Idle,
            Err(end) => return end,
        }
        let (header, body, fds) = match read_message(stream) {
            Ok(Some(m)) => m,
            Ok(None) => return End::Closed,
            Err(why) => return End::Broken(why),
        };
        if !header.is_command() {
            return End::Broken(format!(
                "message id {} is not a command (flags {:#x})",
                header.id, header.flags
            ));
        }
        debug!(
            id = header.id,
            command = header.command,
            size = header.size,
            fds = fds.len(),
            "message"
        );
        let result = session.handle(model, header.command, &body, fds);
        if header.no_reply() {
            if let Err(errno) = result {
                debug!(command = header.command, errno, "no-reply command failed");
            }
            continue;
        }
        let sent = match result {
            Ok(reply) => send(
                stream,
                &header.reply(reply.body.len()).encode(),
                &reply.body,
                reply.fd,
            ),
            Err(errno) => {
                debug!(command = header.command, errno, "error reply");
                send(stream, &header.error_reply(errno).encode(), &[], None)
            }
        };
        if let Err(e) = sent {
            return End::Broken(format!("sending the reply to message {}: {e}", header.id));
        }
    }
}

type Message = (Header, Vec<u8>, Vec<OwnedFd>);

/// Reads one whole message; `None` on a clean close before its first byte.
fn read_message(stream: &UnixStream) -> Result<Option<Message>, String> {
    let mut raw = [0u8; HEADER_SIZE];
    let mut fds = Vec::new();
    let mut filled = 0;
    while filled < HEADER_SIZE {
        let (n, more) =
            recv_some(stream, &mut raw[filled..]).map_err(|e| format!("reading a header: {e}"))?;
        fds.extend(more);
        if n == 0 {
            return if filled == 0 {
                Ok(None)
            } else {
                Err(format!("the client went away after {filled} header bytes"))
            };
        }
        filled += n;
    }
    let header = Header::decode(&raw);
    let size = header.size as usize;
    if !(HEADER_SIZE..=MAX_MESSAGE).contains(&size) {
        // The body cannot be skipped reliably: say why and drop the connection.
        let _ = send(
            stream,
            &header.error_reply(libc::EINVAL).encode(),
            &[],
            None,
        );
        return Err(format!(
            "message id {} claims {} bytes",
            header.id, header.size
        ));
    }
    let mut body = vec![0u8; size - HEADER_SIZE];
    let mut filled = 0;
    while filled < body.len() {
        let (n, more) = recv_some(stream, &mut body[filled..])
            .map_err(|e| format!("reading message {}: {e}", header.id))?;
        fds.extend(more);
        if n == 0 {
            return Err(format!(
                "the client went away in the middle of message {} ({filled} of {} body bytes)",
                header.id,
                body.len()
            ));
        }
        filled += n;
    }
    Ok(Some((header, body, fds)))
}

fn recv_some(stream: &UnixStream, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), std::io::Error> {
    let mut cmsg = nix::cmsg_space!([RawFd; MAX_MSG_FDS as usize]);
    let mut iov = [IoSliceMut::new(buf)];
    loop {
        match recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => {
                let mut fds = Vec::new();
                if let Ok(cmsgs) = msg.cmsgs() {
                    for c in cmsgs {
                        if let ControlMessageOwned::ScmRights(list) = c {
                            // SAFETY: the kernel just installed these descriptors in this
                            // process (SCM_RIGHTS); nothing else owns them.
                            fds.extend(
                                list.into_iter()
                                    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                            );
                        }
                    }
                }
                if msg.flags.contains(MsgFlags::MSG_CTRUNC) {
                    warn!("descriptors were truncated: the client sent more than {MAX_MSG_FDS}");
                }
                return Ok((msg.bytes, fds));
            }
            Err(Errno::EINTR) => {}
            Err(Errno::ECONNRESET) => return Ok((0, Vec::new())),
            Err(e) => return Err(e.into()),
        }
    }
}

/// Sends a reply (header, body and at most one descriptor) whole; never raises SIGPIPE.
fn send(
    stream: &UnixStream,
    header: &[u8],
    body: &[u8],
    fd: Option<BorrowedFd<'_>>,
) -> Result<(), std::io::Error> {
    let raw: Vec<RawFd> = fd.iter().map(|f| f.as_raw_fd()).collect();
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
        let cmsgs: &[ControlMessage<'_>] = if sent == 0 && !raw.is_empty() {
            &rights
        } else {
            &[]
        };
        match sendmsg::<()>(
            stream.as_raw_fd(),
            &iov,
            cmsgs,
            MsgFlags::MSG_NOSIGNAL,
            None,
        ) {
            Ok(0) => return Err(std::io::Error::from(std::io::ErrorKind::WriteZero)),
            Ok(n) => sent += n,
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
