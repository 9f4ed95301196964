//! Runs the `ocxlpmem-ctl` binary against the embedded simulated card (`--sim` with a
//! temporary image) and parses its JSON.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ocxlpmem-ctl");

fn run_in(dir: &Path, args: &[&str]) -> Output {
    let img = dir.join("card.img");
    Command::new(BIN)
        .args(["--sim", "--sim-image"])
        .arg(&img)
        .args(["--sim-size", "32M", "-o", "json"])
        .args(args)
        .env("XDG_STATE_HOME", dir.join("state"))
        .output()
        .expect("run ocxlpmem-ctl")
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

fn ok(dir: &Path, args: &[&str]) -> Value {
    let o = run_in(dir, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    json(&o)
}

fn code(dir: &Path, args: &[&str]) -> i32 {
    run_in(dir, args).status.code().unwrap_or(-1)
}

#[test]
fn info_reports_the_identity_fixed_at_creation() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("card.img");
    let o = Command::new(BIN)
        .args(["--sim", "--sim-image"])
        .arg(&img)
        .args([
            "--sim-serial",
            "0x1234",
            "--sim-size",
            "32M",
            "-o",
            "json",
            "info",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    let v = json(&o);
    assert_eq!(v["serial"], 0x1234);
    assert_eq!(v["lpc_size"], 32 << 20);
    assert_eq!(v["ready"], true);
    // A later command sees the same card without repeating the identity.
    let again = ok(d.path(), &["info"]);
    assert_eq!(again["serial"], 0x1234);
    // Asking for another identity on the same image is refused with a usage error.
    assert_eq!(code(d.path(), &["--sim-serial", "99", "info"]), 2);
}

#[test]
fn list_heartbeat_health_smart_stats() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(ok(d.path(), &["list"])[0]["kind"], "sim");
    assert!(ok(d.path(), &["list"])[0].get("regions").is_none());
    let l = ok(d.path(), &["list", "-D", "-R"]);
    assert_eq!(l[0]["dimms"][0]["dev"], "nmem0");
    assert_eq!(l[0]["regions"][0]["offset"], 16 << 20);
    assert_eq!(l[0]["regions"][0]["size"], 16 << 20);
    assert_eq!(
        ok(d.path(), &["list", "--serial", "1"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(ok(d.path(), &["heartbeat"])["heartbeat"], "ok");
    let h = ok(d.path(), &["health"]);
    assert!(h["health_state"].is_string(), "{h}");
    let s = ok(d.path(), &["smart"]);
    assert!(!s["attributes"].as_array().unwrap().is_empty());
    let st = ok(d.path(), &["stats"]);
    assert!(st["reset_count"].is_number(), "{st}");
}

#[test]
fn error_log_drains_every_entry() {
    let d = tempfile::tempdir().unwrap();
    let v = ok(d.path(), &["--sim-error-logs", "3", "error-log"]);
    assert_eq!(v["count"], 3);
    assert_eq!(ok(d.path(), &["error-log"])["count"], 0);
}

#[test]
fn request_health_and_controller_dump_to_a_file() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(ok(d.path(), &["request-health"])["requested"], true);
    let f = d.path().join("dump.bin");
    let v = ok(
        d.path(),
        &["controller-dump", "--file", f.to_str().unwrap()],
    );
    let n = v["bytes"].as_u64().unwrap();
    assert!(n > 0);
    assert_eq!(std::fs::metadata(&f).unwrap().len(), n);
}

#[test]
fn monitor_prints_json_lines_and_stops_at_count() {
    let d = tempfile::tempdir().unwrap();
    let o = run_in(
        d.path(),
        &[
            "--sim-error-logs",
            "1",
            "monitor",
            "--count",
            "1",
            "--timeout",
            "5000",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    let line = String::from_utf8(o.stdout).unwrap();
    let v: Value = serde_json::from_str(line.lines().next().unwrap()).unwrap();
    assert_eq!(v["event"], "error_log_available");
}

#[test]
fn label_area_zero_write_read_on_card_and_file() {
    let d = tempfile::tempdir().unwrap();
    let raw = d.path().join("in.bin");
    let mut data = vec![0u8; 4096];
    data[..15].copy_from_slice(b"NAMESPACE_INDEX");
    std::fs::write(&raw, &data).unwrap();
    ok(d.path(), &["write-labels", "-i", raw.to_str().unwrap()]);
    let out = d.path().join("out.bin");
    let v = ok(d.path(), &["read-labels", "-O", out.to_str().unwrap()]);
    assert_eq!(v["index"][0]["signature_present"], true);
    assert_eq!(&std::fs::read(&out).unwrap()[..4096], &data[..]);
    assert_eq!(ok(d.path(), &["zero-labels"])["zeroed_bytes"], 16 << 20);
    assert_eq!(ok(d.path(), &["read-labels"])["all_zero"], true);
    // The same commands on an image file.
    let file = d.path().join("lsa.img");
    std::fs::write(&file, &data).unwrap();
    let f = file.to_str().unwrap();
    assert_eq!(
        ok(d.path(), &["read-labels", "--file", f])["index"][0]["signature_present"],
        true
    );
    ok(d.path(), &["zero-labels", "--file", f]);
    assert_eq!(
        ok(d.path(), &["read-labels", "--file", f])["all_zero"],
        true
    );
    assert_eq!(
        code(d.path(), &["read-labels", "--file", "/nonexistent/x"]),
        3
    );
}

#[test]
fn debug_and_destructive_commands_need_unsafe() {
    let d = tempfile::tempdir().unwrap();
    for args in [
        &["mmio-read", "0"][..],
        &["mmio-write", "0x28", "1"],
        &["shutdown"],
        &["secure-erase"],
    ] {
        let o = run_in(d.path(), args);
        assert_eq!(o.status.code(), Some(5), "{args:?}");
        let v = json(&o);
        assert!(v["error"]["hint"].as_str().unwrap().contains("--unsafe"));
    }
    let v = ok(d.path(), &["--unsafe", "mmio-read", "0x148"]);
    assert_eq!(v["value"].as_u64().unwrap().to_le_bytes(), *b"SIM 1.0 ");
    ok(d.path(), &["--unsafe", "mmio-write", "0x10", "0"]);
    let e = ok(d.path(), &["--unsafe", "secure-erase"]);
    assert!(e["accessible_attempted"].is_number(), "{e}");
    let fw = d.path().join("fw.bin");
    std::fs::write(&fw, vec![0x5A; 64]).unwrap();
    let fwp = fw.to_str().unwrap();
    assert_eq!(code(d.path(), &["fw-update", "-i", fwp]), 5);
    assert_eq!(
        ok(d.path(), &["--unsafe", "fw-update", "-i", fwp])["updated"],
        true
    );
    assert_eq!(code(d.path(), &["fw-debug", "--action", "5"]), 5);
    assert!(ok(d.path(), &["--unsafe", "fw-debug", "--action", "5"])["bytes"].is_number());
    assert_eq!(
        code(d.path(), &["--unsafe", "fw-debug", "--action", "300"]),
        2
    );
    ok(d.path(), &["--unsafe", "shutdown"]);
}

#[test]
fn bad_arguments_are_usage_errors() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(code(d.path(), &["no-such-command"]), 2);
    assert_eq!(code(d.path(), &["--unsafe", "mmio-read", "banana"]), 2);
    assert_eq!(code(d.path(), &["--sim-fault", "no-such-fault", "info"]), 2);
    // No device selected at all.
    let o = Command::new(BIN)
        .args(["-o", "json", "info"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(json(&o)["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("--sim"));
    // A size that is not a power of two fails at creation and says what to do.
    let d2 = tempfile::tempdir().unwrap();
    let o = Command::new(BIN)
        .args(["--sim", "--sim-image"])
        .arg(d2.path().join("x.img"))
        .args(["--sim-size", "33M", "-o", "json", "info"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(json(&o)["error"]["hint"]
        .as_str()
        .unwrap()
        .contains("power of two"));
}

#[test]
fn device_faults_map_to_the_device_exit_code() {
    let d = tempfile::tempdir().unwrap();
    for fault in ["command-timeout", "wrong-id"] {
        let o = run_in(d.path(), &["--sim-fault", fault, "heartbeat"]);
        assert_eq!(
            o.status.code(),
            Some(4),
            "{fault}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(json(&o)["error"]["message"].is_string());
    }
    assert_eq!(
        code(d.path(), &["--sim-fault", "status-fail", "heartbeat"]),
        1
    );
    assert_eq!(
        code(d.path(), &["--sim-fault", "bad-smart-payload", "smart"]),
        4
    );
    assert_eq!(
        code(
            d.path(),
            &[
                "--ready-timeout",
                "50",
                "--sim-fault",
                "never-ready",
                "info"
            ]
        ),
        4
    );
    assert_eq!(
        code(d.path(), &["--sim-fault", "surprise-removal", "info"]),
        4
    );
}

#[test]
fn selftest_passes_on_the_simulator_and_skips_without_a_card() {
    let d = tempfile::tempdir().unwrap();
    let v = ok(d.path(), &["selftest"]);
    assert_eq!(v["failed"], 0);
    let names: Vec<&str> = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["step"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"heartbeat") && names.contains(&"media_read"));
    assert!(!names.contains(&"controller_dump"));
    let v = ok(d.path(), &["selftest", "--destructive"]);
    assert_eq!(v["failed"], 0);
    assert!(v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["step"] == "controller_dump"));
    // No card at that address: a clean skip with the reason.
    let o = Command::new(BIN)
        .args(["-o", "json", "selftest", "--bdf", "ffff:ff:1f.7"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(77));
    let v = json(&o);
    assert_eq!(v["skipped"], true);
    assert!(v["reason"].as_str().unwrap().contains("ffff:ff:1f.7"));
    // A failing step makes the suite fail.
    assert_eq!(
        code(d.path(), &["--sim-fault", "bad-smart-payload", "selftest"]),
        1
    );
}

#[test]
fn kernel_device_that_does_not_exist_says_so() {
    let o = Command::new(BIN)
        .args([
            "-o",
            "json",
            "--kernel",
            "/dev/ocxlpmem-does-not-exist",
            "stats",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    assert!(json(&o)["error"]["message"]
        .as_str()
        .unwrap()
        .contains("kernel driver"));
}

#[test]
fn text_output_is_key_value_lines() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("card.img");
    let o = Command::new(BIN)
        .args(["--sim", "--sim-image"])
        .arg(&img)
        .args(["--sim-size", "32M", "heartbeat"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8(o.stdout)
        .unwrap()
        .starts_with("heartbeat: ok\n"));
}

#[test]
fn default_image_lives_under_xdg_state_home_with_its_sidecar() {
    let d = tempfile::tempdir().unwrap();
    let state = d.path().join("state");
    let o = Command::new(BIN)
        .args([
            "--sim",
            "--sim-size",
            "32M",
            "--sim-serial",
            "77",
            "-o",
            "json",
            "info",
        ])
        .env("XDG_STATE_HOME", &state)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let img = state.join("ocxlpmem").join("sim.img");
    assert_eq!(json(&o)["image"], img.to_str().unwrap());
    let side: Value = serde_json::from_slice(
        &std::fs::read(state.join("ocxlpmem").join("sim.img.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(side["serial"], 77);
    assert_eq!(side["lpc_size"], 32 << 20);
}
