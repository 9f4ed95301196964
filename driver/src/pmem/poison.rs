//! Poison-aware reads.
//!
//! A load from poisoned media (or from a file page past EOF) raises SIGBUS, which kills a
//! process that does not expect it. Instead of a signal handler with a recovery point,
//! reads go through `process_vm_readv` on this very process: the kernel performs the copy,
//! and a page it cannot fault in (SIGBUS/hwpoison) makes the call stop short with EFAULT,
//! never a signal. The remote iovecs are cut at page boundaries, so the count of bytes
//! copied names the first bad page. Known bad ranges are checked first.

use std::io;

use crate::media::file_page_size;

/// Outcome of a checked copy.
pub(crate) enum ReadFault {
    /// The byte at this offset (relative to `src`) could not be read.
    At(usize),
    /// `process_vm_readv` itself is unavailable (seccomp, ENOSYS): the OS error.
    Unavailable(io::Error),
}

const IOV_BATCH: usize = 512;

/// Copies `buf.len()` bytes from `src` into `buf` through the kernel.
///
/// # Safety
/// None for memory safety (the kernel validates `src`); `src` should be inside a mapping
/// of this process for the result to mean anything.
pub(crate) fn checked_copy(src: *const u8, buf: &mut [u8]) -> Result<(), ReadFault> {
    let page = file_page_size() as usize;
    let mut done = 0usize;
    let pid = std::process::id() as libc::pid_t;
    while done < buf.len() {
        let mut remote: Vec<libc::iovec> = Vec::with_capacity(IOV_BATCH);
        let mut pos = done;
        while pos < buf.len() && remote.len() < IOV_BATCH {
            let addr = (src as usize).wrapping_add(pos);
            let n = (page - addr % page).min(buf.len() - pos);
            remote.push(libc::iovec { iov_base: addr as *mut libc::c_void, iov_len: n });
            pos += n;
        }
        let want = pos - done;
        let local = libc::iovec {
            // SAFETY: done < buf.len(), so the pointer is inside buf.
            iov_base: unsafe { buf.as_mut_ptr().add(done) }.cast(),
            iov_len: want,
        };
        // SAFETY: the local iovec covers `want` writable bytes of `buf`; the remote iovecs
        // are only read by the kernel, which checks them and reports faults as EFAULT.
        let n = unsafe {
            libc::process_vm_readv(pid, &local, 1, remote.as_ptr(), remote.len() as _, 0)
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EFAULT) => Err(ReadFault::At(done)),
                _ => Err(ReadFault::Unavailable(e)),
            };
        }
        let n = n as usize;
        if n < want {
            return Err(ReadFault::At(done + n));
        }
        done += n;
    }
    Ok(())
}
