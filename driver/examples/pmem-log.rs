//! `pmem-log`: a crash-consistent append-only log on a [`PmemMap`], the example of a
//! pmem-aware application.
//!
//! ```text
//! pmem-log append FILE [--size BYTES] [--count N] [--tear-after K]
//! pmem-log verify FILE
//! ```
//!
//! Layout (little-endian): a header line at 0 (magic, version, capacity), the tail at
//! [`TAIL_OFF`] on its own cache block (bytes of committed records), records from
//! [`DATA_OFF`]. A record is `len u32 | magic u32 | seq u64 | checksum u64 | payload`,
//! padded to 8 bytes; the checksum (FNV-1a 64) covers seq, len and payload.
//!
//! Appending is two-phase: (1) copy the record past the tail and persist it; (2) store the
//! new tail (one 8-byte atomic store) and persist it. Only then is the record acknowledged
//! (`ack SEQ` on stdout). A crash between (1) and (2) leaves a record past the tail that
//! recovery ignores and the next append overwrites; a crash inside (2) cannot tear the
//! tail, an aligned 8-byte store being failure-atomic. Recovery walks the committed
//! records and refuses to go on if one of them fails its checksum.
//!
//! `--tear-after K` stops after K records by writing half of the next one, persisting it,
//! and aborting before the tail moves: a torn tail on demand, for tests.
//!
//! Run it with `cargo run -p ocxlpmem --example pmem-log -- append /tmp/log --count 10`.
//! The file is a plain file, so the mapping has PAGE granularity and persists by msync;
//! `PMEM2_FORCE_GRANULARITY=CACHE_LINE` makes it use cache flushes as on a namespace.

use std::io::Write;
use std::process::ExitCode;

use ocxlpmem::pmem::{Flags, PmemError, PmemMap};

const MAGIC: &[u8; 8] = b"OCXLPLOG";
const VERSION: u32 = 1;
const RECORD_MAGIC: u32 = 0x5245_4344; // "RECD"
/// The tail sits on its own 128-byte block (a POWER cache block), away from the header.
const TAIL_OFF: usize = 128;
const DATA_OFF: usize = 256;
const RECORD_HEADER: usize = 24;
const DEFAULT_SIZE: u64 = 8 << 20;
/// Largest payload accepted when reading a record back (anything larger is corruption).
const MAX_PAYLOAD: usize = 1 << 20;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pmem-log: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> String {
    "usage: pmem-log append FILE [--size BYTES] [--count N] [--tear-after K]\n       \
     pmem-log verify FILE"
        .into()
}

fn run(args: &[String]) -> Result<(), String> {
    let (cmd, path) = match args {
        [cmd, path, ..] => (cmd.as_str(), path.as_str()),
        _ => return Err(usage()),
    };
    let mut size = DEFAULT_SIZE;
    let mut count = u64::MAX;
    let mut tear_after = None;
    let mut it = args[2..].iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or(format!("{name} needs a value"))?;
            v.parse().map_err(|e| format!("{name} {v:?}: {e}"))
        };
        match a.as_str() {
            "--size" => size = value("--size")?,
            "--count" => count = value("--count")?,
            "--tear-after" => tear_after = Some(value("--tear-after")?),
            other => return Err(format!("unknown option {other:?}\n{}", usage())),
        }
    }
    match cmd {
        "append" => {
            let map = PmemMap::from_file(path, size).map_err(|e| e.to_string())?;
            let mut log = Log::open(map)?;
            append(&mut log, count, tear_after)
        }
        "verify" => {
            let len = std::fs::metadata(path)
                .map_err(|e| format!("{path}: {e}"))?
                .len();
            let map = PmemMap::from_file(path, len).map_err(|e| e.to_string())?;
            let log = Log::open(map)?;
            verify(&log)
        }
        _ => Err(usage()),
    }
}

/// The payload of record `seq`: its length and bytes follow from the number, so `verify`
/// can check every byte.
fn payload(seq: u64) -> Vec<u8> {
    let len = 16 + (seq.wrapping_mul(37) % 200) as usize;
    (0..len)
        .map(|i| (seq as u8).wrapping_mul(13).wrapping_add(i as u8))
        .collect()
}

fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &b in *part {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

fn record_size(payload_len: usize) -> usize {
    (RECORD_HEADER + payload_len).div_ceil(8) * 8
}

fn encode(seq: u64, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let sum = fnv1a(&[&seq.to_le_bytes(), &len.to_le_bytes(), payload]);
    let mut rec = Vec::with_capacity(record_size(payload.len()));
    rec.extend_from_slice(&len.to_le_bytes());
    rec.extend_from_slice(&RECORD_MAGIC.to_le_bytes());
    rec.extend_from_slice(&seq.to_le_bytes());
    rec.extend_from_slice(&sum.to_le_bytes());
    rec.extend_from_slice(payload);
    rec.resize(record_size(payload.len()), 0);
    rec
}

struct Record {
    seq: u64,
    payload: Vec<u8>,
    size: usize,
}

struct Log {
    map: PmemMap,
    /// Committed bytes after DATA_OFF.
    tail: usize,
    records: Vec<(u64, usize)>,
    torn_tail: bool,
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}

fn pmem(what: &str) -> impl Fn(PmemError) -> String + '_ {
    move |e| format!("{what}: {e}")
}

impl Log {
    /// Opens the log, formatting an all-zero file, and recovers the committed records.
    fn open(map: PmemMap) -> Result<Log, String> {
        if map.len() < DATA_OFF + RECORD_HEADER {
            return Err(format!(
                "the file holds {} bytes, too few for a log",
                map.len()
            ));
        }
        let mut header = [0u8; 24];
        map.read(0, &mut header)
            .map_err(pmem("reading the header"))?;
        if header.iter().all(|&b| b == 0) {
            let mut h = Vec::with_capacity(24);
            h.extend_from_slice(MAGIC);
            h.extend_from_slice(&VERSION.to_le_bytes());
            h.extend_from_slice(&0u32.to_le_bytes());
            h.extend_from_slice(&(map.len() as u64).to_le_bytes());
            map.store_u64(TAIL_OFF, 0).map_err(pmem("formatting"))?;
            map.persist(TAIL_OFF, 8).map_err(pmem("formatting"))?;
            // The magic goes last: a half-formatted file is still all zeros at 0.
            map.memcpy(0, &h, Flags::NONE).map_err(pmem("formatting"))?;
            header.copy_from_slice(&h);
        }
        if &header[..8] != MAGIC {
            return Err("not a pmem-log file (bad magic at offset 0)".into());
        }
        if u32_at(&header, 8) != VERSION {
            return Err(format!(
                "log version {} is not {VERSION}",
                u32_at(&header, 8)
            ));
        }
        let mut t = [0u8; 8];
        map.read(TAIL_OFF, &mut t)
            .map_err(pmem("reading the tail"))?;
        let tail = u64::from_le_bytes(t);
        let room = (map.len() - DATA_OFF) as u64;
        if tail > room || tail % 8 != 0 {
            return Err(format!(
                "tail {tail:#x} at offset {TAIL_OFF:#x} is past the {room:#x} data bytes or unaligned"
            ));
        }
        let mut log = Log {
            map,
            tail: tail as usize,
            records: Vec::new(),
            torn_tail: false,
        };
        let mut pos = 0;
        while pos < log.tail {
            let r = log.record_at(pos)?.ok_or_else(|| {
                format!(
                    "committed record at offset {:#x} is invalid (bad magic or length)",
                    DATA_OFF + pos
                )
            })?;
            log.records.push((r.seq, pos));
            pos += r.size;
        }
        if pos != log.tail {
            return Err(format!(
                "the last committed record ends at {:#x}, past the tail {:#x}",
                DATA_OFF + pos,
                DATA_OFF + log.tail
            ));
        }
        // Anything written past the tail is an unacknowledged (possibly torn) append.
        let mut next = [0u8; RECORD_HEADER];
        if DATA_OFF + log.tail + RECORD_HEADER <= log.map.len() {
            log.map
                .read(DATA_OFF + log.tail, &mut next)
                .map_err(pmem("reading past the tail"))?;
            log.torn_tail = next.iter().any(|&b| b != 0);
        }
        Ok(log)
    }

    /// The record at data offset `pos`: None if its header is not a record's; an error if
    /// it looks like one but fails its checksum.
    fn record_at(&self, pos: usize) -> Result<Option<Record>, String> {
        let at = DATA_OFF + pos;
        let mut h = [0u8; RECORD_HEADER];
        if at + RECORD_HEADER > self.map.len() {
            return Ok(None);
        }
        self.map
            .read(at, &mut h)
            .map_err(pmem("reading a record header"))?;
        let len = u32_at(&h, 0) as usize;
        if u32_at(&h, 4) != RECORD_MAGIC
            || len > MAX_PAYLOAD
            || at + record_size(len) > self.map.len()
        {
            return Ok(None);
        }
        let seq = u64_at(&h, 8);
        let sum = u64_at(&h, 16);
        let mut payload = vec![0u8; len];
        self.map
            .read(at + RECORD_HEADER, &mut payload)
            .map_err(pmem("reading a record"))?;
        if fnv1a(&[&seq.to_le_bytes(), &(len as u32).to_le_bytes(), &payload]) != sum {
            return Err(format!(
                "record {seq} at offset {at:#x} fails its checksum (media corrupted)"
            ));
        }
        Ok(Some(Record {
            seq,
            payload,
            size: record_size(len),
        }))
    }

    fn next_seq(&self) -> u64 {
        self.records.last().map_or(0, |&(s, _)| s + 1)
    }

    /// The two-phase append; returns once the record and the tail are persistent.
    fn append(&mut self, seq: u64, payload: &[u8]) -> Result<(), String> {
        let rec = encode(seq, payload);
        let at = DATA_OFF + self.tail;
        if at + rec.len() > self.map.len() {
            return Err(format!("log full at offset {at:#x}"));
        }
        // Phase 1: the record, persistent before the tail can point past it.
        self.map
            .memcpy(at, &rec, Flags::NONE)
            .map_err(pmem("writing a record"))?;
        // Phase 2: the tail, one failure-atomic 8-byte store.
        let tail = self.tail + rec.len();
        self.map
            .store_u64(TAIL_OFF, tail as u64)
            .map_err(pmem("moving the tail"))?;
        self.map
            .persist(TAIL_OFF, 8)
            .map_err(pmem("persisting the tail"))?;
        self.records.push((seq, self.tail));
        self.tail = tail;
        Ok(())
    }

    /// Writes and persists the first half of a record past the tail, leaving the tail.
    fn tear(&self, seq: u64, payload: &[u8]) -> Result<(), String> {
        let rec = encode(seq, payload);
        let at = DATA_OFF + self.tail;
        let half = &rec[..rec.len() / 2];
        if at + rec.len() > self.map.len() {
            return Err(format!("log full at offset {at:#x}"));
        }
        self.map
            .memcpy(at, half, Flags::NONE)
            .map_err(pmem("writing a torn record"))
    }
}

fn append(log: &mut Log, count: u64, tear_after: Option<u64>) -> Result<(), String> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut written = 0u64;
    while written < count {
        let seq = log.next_seq();
        let p = payload(seq);
        if tear_after == Some(written) {
            log.tear(seq, &p)?;
            eprintln!("pmem-log: tore record {seq} on purpose; aborting");
            std::process::abort();
        }
        match log.append(seq, &p) {
            Ok(()) => {}
            Err(e) if e.starts_with("log full") && count == u64::MAX => break,
            Err(e) => return Err(e),
        }
        // Acknowledged only now, after both phases are persistent.
        writeln!(out, "ack {seq}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("stdout: {e}"))?;
        written += 1;
    }
    Ok(())
}

fn verify(log: &Log) -> Result<(), String> {
    for (i, &(seq, pos)) in log.records.iter().enumerate() {
        if seq != i as u64 {
            return Err(format!(
                "record at offset {:#x} has sequence {seq}, expected {i}",
                DATA_OFF + pos
            ));
        }
        let r = log
            .record_at(pos)?
            .ok_or_else(|| format!("record {seq} vanished"))?;
        if r.payload != payload(seq) {
            return Err(format!(
                "record {seq} at offset {:#x} has the wrong payload",
                DATA_OFF + pos
            ));
        }
    }
    let last = match log.records.last() {
        Some(&(s, _)) => s.to_string(),
        None => "null".into(),
    };
    println!(
        "{{\"records\": {}, \"last_seq\": {last}, \"tail\": {}, \"torn_tail\": {}, \"granularity\": \"{:?}\"}}",
        log.records.len(),
        log.tail,
        log.torn_tail,
        log.map.granularity()
    );
    Ok(())
}
