//! The example pmem application (`driver/examples/pmem-log.rs`) killed mid-write: every
//! record it acknowledged must be there, intact, after recovery.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_pmem-log");

/// Output of `pmem-log verify`.
struct Verified {
    records: u64,
    last_seq: Option<u64>,
    torn_tail: bool,
}

fn verify(path: &Path) -> Verified {
    let out = Command::new(BIN).arg("verify").arg(path).output().unwrap();
    assert!(
        out.status.success(),
        "verify failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Verified {
        records: v["records"].as_u64().unwrap(),
        last_seq: v["last_seq"].as_u64(),
        torn_tail: v["torn_tail"].as_bool().unwrap(),
    }
}

fn parse_ack(line: &str) -> u64 {
    line.strip_prefix("ack ")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unexpected output line {line:?}"))
}

/// Starts an appender, waits for `acks` acknowledgements, SIGKILLs it, and returns every
/// sequence number it acknowledged (including lines still in the pipe).
fn append_and_kill(path: &Path, acks: usize, granularity: Option<&str>) -> Vec<u64> {
    let mut cmd = Command::new(BIN);
    cmd.arg("append")
        .arg(path)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match granularity {
        Some(g) => cmd.env("PMEM2_FORCE_GRANULARITY", g),
        None => cmd.env_remove("PMEM2_FORCE_GRANULARITY"),
    };
    let mut child = cmd.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    while seen.len() < acks {
        match lines.next() {
            Some(line) => seen.push(parse_ack(&line.unwrap())),
            None => panic!("appender stopped after {} acks", seen.len()),
        }
    }
    child.kill().unwrap();
    // Whatever it printed before the signal was acknowledged too.
    for line in lines {
        seen.push(parse_ack(&line.unwrap()));
    }
    let status = child.wait().unwrap();
    assert_eq!(
        status.signal(),
        Some(libc::SIGKILL),
        "the appender should have been killed mid-write, not exit: {status}"
    );
    seen
}

#[test]
fn killed_appender_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let mut acked: Vec<u64> = Vec::new();
    let mut recovered_last: Option<u64> = None;
    // Alternate msync (PAGE) and cache-flush (forced CACHE_LINE) persistence.
    for (round, g) in [None, Some("CACHE_LINE"), None, Some("CACHE_LINE")]
        .into_iter()
        .enumerate()
    {
        let got = append_and_kill(&path, 100 + 50 * round, g);
        // Each run continues where recovery left off (a record committed just before the
        // kill but not yet acknowledged counts as committed).
        assert_eq!(
            got.first().copied(),
            Some(recovered_last.map_or(0, |l| l + 1)),
            "round {round}"
        );
        acked.extend(got);
        let v = verify(&path);
        let last_acked = *acked.iter().max().unwrap();
        assert!(
            v.last_seq.is_some_and(|l| l >= last_acked),
            "round {round}: last acknowledged {last_acked}, log has {:?}",
            v.last_seq
        );
        // verify checked that records 0..=last_seq are all there, in order, intact.
        assert_eq!(v.records, v.last_seq.unwrap() + 1);
        recovered_last = v.last_seq;
    }
}

#[test]
fn torn_record_past_the_tail_is_ignored_and_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let out = Command::new(BIN)
        .args(["append"])
        .arg(&path)
        .args(["--count", "100", "--tear-after", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGABRT), "{out:?}");
    let acks: Vec<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(parse_ack)
        .collect();
    assert_eq!(acks, vec![0, 1, 2, 3, 4]);
    let v = verify(&path);
    assert_eq!((v.records, v.last_seq, v.torn_tail), (5, Some(4), true));

    let out = Command::new(BIN)
        .arg("append")
        .arg(&path)
        .args(["--count", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "ack 5\nack 6\nack 7\n"
    );
    let v = verify(&path);
    assert_eq!((v.records, v.last_seq, v.torn_tail), (8, Some(7), false));
}

#[test]
fn corrupted_committed_record_is_reported_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("log");
    let out = Command::new(BIN)
        .arg("append")
        .arg(&path)
        .args(["--count", "3"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // Flip one payload byte of record 0 (data at 256, payload after its 24-byte header).
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[256 + 24 + 3] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    let out = Command::new(BIN).arg("verify").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("record 0 at offset 0x100 fails its checksum"),
        "{err}"
    );
}
