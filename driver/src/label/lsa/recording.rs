//! A label area that records every transfer: the test seam for crash consistency (replay
//! a prefix of the write stream) and for counting what an operation reads.

use std::sync::Mutex;

use super::{Lsa, LsaError, MemLsa};

/// One recorded transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LsaOp {
    /// A read of `len` bytes at `offset`.
    Read {
        /// Start.
        offset: u64,
        /// Length.
        len: u64,
    },
    /// A write of `data` at `offset`.
    Write {
        /// Start.
        offset: u64,
        /// The bytes written.
        data: Vec<u8>,
    },
}

/// An in-memory area that logs every read and write, and can be told to fail every write
/// after the first `n` (a crash of the writer).
#[derive(Debug)]
pub struct RecordingLsa {
    inner: MemLsa,
    log: Mutex<Vec<LsaOp>>,
    fail_after_writes: Mutex<Option<usize>>,
}

impl RecordingLsa {
    /// Records transfers on an area holding `bytes`, with `max_xfer` per transfer.
    pub fn new(bytes: Vec<u8>, max_xfer: u64) -> Self {
        Self {
            inner: MemLsa::from_bytes(bytes).with_max_xfer(max_xfer),
            log: Mutex::new(Vec::new()),
            fail_after_writes: Mutex::new(None),
        }
    }

    /// Lets `n` more writes through, then fails every later one (the "power cut").
    pub fn fail_after_writes(&self, n: usize) {
        *lock(&self.fail_after_writes) = Some(n);
    }

    /// Takes the log recorded so far, leaving it empty.
    pub fn take_log(&self) -> Vec<LsaOp> {
        std::mem::take(&mut *lock(&self.log))
    }

    /// The writes recorded so far, as (offset, data).
    pub fn writes(&self) -> Vec<(u64, Vec<u8>)> {
        lock(&self.log)
            .iter()
            .filter_map(|op| match op {
                LsaOp::Write { offset, data } => Some((*offset, data.clone())),
                LsaOp::Read { .. } => None,
            })
            .collect()
    }

    /// The reads recorded so far, as (offset, len).
    pub fn reads(&self) -> Vec<(u64, u64)> {
        lock(&self.log)
            .iter()
            .filter_map(|op| match op {
                LsaOp::Read { offset, len } => Some((*offset, *len)),
                LsaOp::Write { .. } => None,
            })
            .collect()
    }

    /// A copy of the current contents.
    pub fn snapshot(&self) -> Vec<u8> {
        self.inner.snapshot()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Lsa for RecordingLsa {
    fn size(&self) -> u64 {
        self.inner.size()
    }

    fn max_xfer(&self) -> u64 {
        self.inner.max_xfer()
    }

    fn read(&self, offset: u64, buf: &mut [u8]) -> Result<(), LsaError> {
        lock(&self.log).push(LsaOp::Read {
            offset,
            len: buf.len() as u64,
        });
        self.inner.read(offset, buf)
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), LsaError> {
        {
            let mut budget = lock(&self.fail_after_writes);
            if let Some(n) = budget.as_mut() {
                if *n == 0 {
                    return Err(LsaError::Device {
                        op: "write",
                        offset,
                        what: self.describe(),
                        reason: "injected power cut".into(),
                    });
                }
                *n -= 1;
            }
        }
        lock(&self.log).push(LsaOp::Write {
            offset,
            data: data.to_vec(),
        });
        self.inner.write(offset, data)
    }

    fn describe(&self) -> String {
        format!("recording {}", self.inner.describe())
    }
}
