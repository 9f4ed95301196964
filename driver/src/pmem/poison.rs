//! Reads that survive poisoned media.
//!
//! A load from a poisoned line (a machine check on real memory, SIGBUS after the kernel
//! marks the page hwpoisoned) or from a file page past EOF raises SIGBUS, which kills a
//! process that does not expect it. Instead of a signal handler with a recovery point, the
//! copy is done by the kernel on our behalf: `process_vm_readv` on this very process. The
//! kernel faults the source pages in itself; a page it cannot fault in (SIGBUS, hwpoison)
//! makes the call stop short or fail with EFAULT, never a signal. The remote iovecs are cut
//! at page boundaries, so the count of bytes copied names the first bad page.
//!
//! `process_vm_readv` pins pages, which fails for `VM_PFNMAP` mappings (a `/dev/mem`
//! range); for those a short count is retried page by page through `/proc/self/mem`,
//! which reaches such mappings through their `access` operation and reports EIO where the
//! page cannot be read. Where `process_vm_readv` is refused outright (seccomp: EPERM or
//! ENOSYS) the whole copy goes through `/proc/self/mem`.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::media::file::page_size;

/// Why a checked copy stopped.
#[derive(Debug)]
pub(crate) enum ReadFault {
    /// The byte at this offset (relative to the source) and its page could not be read.
    At(usize),
    /// Neither `process_vm_readv` nor `/proc/self/mem` can be used here: the OS error.
    Unavailable(io::Error),
}

/// Remote iovecs per `process_vm_readv` call (well under IOV_MAX).
const IOV_BATCH: usize = 512;

/// Copies `buf.len()` bytes from address `src` of this process into `buf`, through the
/// kernel, so that an unreadable source page is an error rather than a signal.
///
/// Needs no `unsafe` from the caller: the kernel validates every source address, and
/// `buf` is a Rust slice. `src` should lie in a mapping of this process for the result to
/// mean anything.
pub(crate) fn checked_copy(src: *const u8, buf: &mut [u8]) -> Result<(), ReadFault> {
    let page = page_size() as usize;
    let src = src as usize;
    let mut done = 0usize;
    while done < buf.len() {
        match vm_readv(src, buf, done, page) {
            Ok(n) if n > 0 => done += n,
            Ok(_) | Err(VmError::Fault) => {
                // A page the kernel would not pin: maybe poison, maybe a PFNMAP mapping.
                let end = (done + page - (src + done) % page).min(buf.len());
                match proc_mem_read(src, buf, done, end) {
                    Ok(()) => done = end,
                    Err(ProcMemError::Fault) => return Err(ReadFault::At(done)),
                    Err(ProcMemError::Unavailable(e)) => return Err(ReadFault::Unavailable(e)),
                }
            }
            Err(VmError::Unavailable) => {
                return proc_mem_copy(src, buf, done, page);
            }
        }
    }
    Ok(())
}

enum VmError {
    /// EFAULT before the first byte.
    Fault,
    /// The call is not allowed or not implemented here (EPERM, ENOSYS, ...).
    Unavailable,
}

/// One `process_vm_readv` call covering up to IOV_BATCH pages from `done`; returns how
/// many bytes were copied (short at the first unreadable page).
fn vm_readv(src: usize, buf: &mut [u8], done: usize, page: usize) -> Result<usize, VmError> {
    let mut remote: Vec<libc::iovec> = Vec::with_capacity(IOV_BATCH);
    let mut pos = done;
    while pos < buf.len() && remote.len() < IOV_BATCH {
        let addr = src.wrapping_add(pos);
        let n = (page - addr % page).min(buf.len() - pos);
        remote.push(libc::iovec {
            iov_base: addr as *mut libc::c_void,
            iov_len: n,
        });
        pos += n;
    }
    let local = libc::iovec {
        iov_base: buf[done..].as_mut_ptr().cast(),
        iov_len: pos - done,
    };
    let pid = std::process::id() as libc::pid_t;
    // SAFETY: the local iovec covers `pos - done` writable bytes of `buf` (from `done`);
    // the remote iovecs are only read, by the kernel, which checks each address and reports
    // an unreadable one as a short count or EFAULT instead of touching it from user space.
    let n = unsafe {
        libc::process_vm_readv(
            pid,
            &local,
            1,
            remote.as_ptr(),
            remote.len() as libc::c_ulong,
            0,
        )
    };
    if n < 0 {
        let e = io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::EFAULT) => Err(VmError::Fault),
            _ => Err(VmError::Unavailable),
        };
    }
    Ok(n as usize)
}

enum ProcMemError {
    Fault,
    Unavailable(io::Error),
}

/// Opened per use: an fd of `/proc/self/mem` kept across a fork would read the parent.
fn proc_mem() -> Result<File, ProcMemError> {
    File::open("/proc/self/mem").map_err(ProcMemError::Unavailable)
}

/// Reads source bytes `[from, to)` into the same span of `buf` through `/proc/self/mem`.
fn proc_mem_read(src: usize, buf: &mut [u8], from: usize, to: usize) -> Result<(), ProcMemError> {
    let mem = proc_mem()?;
    read_at_exact(&mem, src, buf, from, to).map_err(|_| ProcMemError::Fault)
}

fn read_at_exact(
    mem: &File,
    src: usize,
    buf: &mut [u8],
    from: usize,
    to: usize,
) -> Result<(), usize> {
    let mut at = from;
    while at < to {
        match mem.read_at(&mut buf[at..to], (src + at) as u64) {
            Ok(0) => return Err(at),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return Err(at),
        }
    }
    Ok(())
}

/// The whole rest of the copy through `/proc/self/mem`, a page at a time so that a
/// failure names its page.
fn proc_mem_copy(
    src: usize,
    buf: &mut [u8],
    mut done: usize,
    page: usize,
) -> Result<(), ReadFault> {
    let mem = match proc_mem() {
        Ok(f) => f,
        Err(ProcMemError::Unavailable(e)) => return Err(ReadFault::Unavailable(e)),
        Err(ProcMemError::Fault) => return Err(ReadFault::At(done)),
    };
    while done < buf.len() {
        let end = (done + page - (src + done) % page).min(buf.len());
        if read_at_exact(&mem, src, buf, done, end).is_err() {
            return Err(ReadFault::At(done));
        }
        done = end;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checked_copy_reads_ordinary_memory_across_pages() {
        let page = page_size() as usize;
        let src: Vec<u8> = (0..3 * page + 123).map(|i| (i % 251) as u8).collect();
        let mut out = vec![0u8; src.len() - 7];
        checked_copy(src[7..].as_ptr(), &mut out).unwrap();
        assert_eq!(&out[..], &src[7..]);
    }

    #[test]
    fn proc_mem_fallback_copies_the_same_bytes() {
        let page = page_size() as usize;
        let src: Vec<u8> = (0..2 * page + 9).map(|i| (i % 13) as u8).collect();
        let mut out = vec![0u8; src.len()];
        proc_mem_copy(src.as_ptr() as usize, &mut out, 0, page).unwrap();
        assert_eq!(out, src);
    }
}
