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
    ok(d.path(), &["init-labels"]);
    let v = ok(d.path(), &["selftest", "--destructive"]);
    assert_eq!(v["failed"], 0, "{v}");
    let cycle = v["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["step"] == "namespace_cycle")
        .unwrap();
    assert_eq!(cycle["result"], "pass", "{cycle}");
    // The scratch namespace is gone again.
    assert!(ok(d.path(), &["list", "-N"])[0]["namespaces"]
        .as_array()
        .unwrap()
        .is_empty());
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

/// Runs the binary with exactly `args` (no simulated card unless they ask for one).
fn raw(dir: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(["-o", "json"])
        .args(args)
        .env("XDG_STATE_HOME", dir.join("state"))
        .output()
        .expect("run ocxlpmem-ctl")
}

fn raw_ok(dir: &Path, args: &[&str]) -> Value {
    let o = raw(dir, args);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    json(&o)
}

#[test]
fn namespaces_are_created_listed_and_destroyed_on_the_card() {
    let d = tempfile::tempdir().unwrap();
    let img = d.path().join("big.img");
    let img = img.to_str().unwrap();
    let sim = [
        "--sim-image",
        img,
        "--sim-size",
        "64M",
        "--sim-serial",
        "0xabc",
    ];
    let run = |extra: &[&str]| raw_ok(d.path(), &[&sim[..], extra].concat());
    let code_of = |extra: &[&str]| {
        raw(d.path(), &[&sim[..], extra].concat())
            .status
            .code()
            .unwrap_or(-1)
    };
    // A blank area: checking fails, creating says to initialise first.
    assert_eq!(code_of(&["check-labels"]), 1);
    let o = raw(
        d.path(),
        &[&sim[..], &["create-namespace", "-s", "16M"]].concat(),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        json(&o)["error"]["hint"]
            .as_str()
            .is_some_and(|h| h.contains("init-labels")),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(run(&["init-labels"])["labels"]["version"], "1.1");
    assert_eq!(run(&["check-labels"])["verified"], true);
    let a = run(&["create-namespace", "-s", "16M", "-n", "alpha"]);
    assert_eq!(
        (a["offset"].as_u64(), a["size"].as_u64()),
        (Some(0), Some(16 << 20))
    );
    // Re-initialising an area that holds namespaces needs --force.
    assert_eq!(code_of(&["init-labels"]), 5);
    let b = run(&["create-namespace", "-n", "rest"]);
    assert_eq!(b["size"], 32 << 20);
    assert_eq!(
        code_of(&["create-namespace", "-s", "16M"]),
        2,
        "no space left"
    );
    let l = run(&["list", "-R", "-N"]);
    let ns = l[0]["namespaces"].as_array().unwrap();
    assert_eq!(ns.len(), 2);
    assert_eq!(ns[0]["name"], "alpha");
    assert_eq!(ns[0]["dev"], "namespace0.0");
    assert_eq!(l[0]["regions"][0]["available_size"], 0);
    assert_eq!(l[0]["regions"][0]["interleave_set_cookie"], 0xabc);
    // read-labels: ndctl's shape, both index blocks and the two labels.
    let r = run(&["read-labels"]);
    assert_eq!(r["index"].as_array().unwrap().len(), 2);
    assert_eq!(r["index"][0]["signature"], "NAMESPACE_INDEX");
    let labels = r["label"].as_array().unwrap();
    assert_eq!(labels.len(), 2);
    assert!(labels.iter().all(|l| l["isetcookie"] == 0xabc));
    // Destroy by name, then by uuid.
    assert_eq!(
        run(&["destroy-namespace", "alpha"])["destroyed"]["name"],
        "alpha"
    );
    let uuid = b["uuid"].as_str().unwrap();
    run(&["destroy-namespace", uuid]);
    assert_eq!(code_of(&["destroy-namespace", uuid]), 3);
    assert!(run(&["list", "-N"])[0]["namespaces"]
        .as_array()
        .unwrap()
        .is_empty());
}

#[test]
fn label_commands_work_offline_on_image_files() {
    let d = tempfile::tempdir().unwrap();
    // A sim card image: its sidecar gives the cookie.
    let img = d.path().join("card.img");
    let img_s = img.to_str().unwrap();
    raw_ok(
        d.path(),
        &[
            "--sim-image",
            img_s,
            "--sim-size",
            "64M",
            "--sim-serial",
            "7",
            "info",
        ],
    );
    raw_ok(d.path(), &["init-labels", "--file", img_s, "-V", "1.2"]);
    let n = raw_ok(
        d.path(),
        &[
            "create-namespace",
            "--file",
            img_s,
            "-s",
            "32M",
            "-n",
            "off",
        ],
    );
    assert_eq!(n["size"], 32 << 20);
    // The card sees what was written offline.
    let l = raw_ok(d.path(), &["--sim-image", img_s, "list", "-N"]);
    assert_eq!(l[0]["namespaces"][0]["name"], "off");
    assert_eq!(l[0]["namespaces"][0]["usable"], true);
    let r = raw_ok(d.path(), &["read-labels", "--file", img_s]);
    assert!(
        r["label"][0]["type_guid"].is_string(),
        "v1.2 labels carry GUIDs: {r}"
    );
    // A bare 128 KiB label area with a region size and a cookie.
    let lsa = d.path().join("lsa.bin");
    std::fs::write(&lsa, vec![0u8; 128 << 10]).unwrap();
    let f = lsa.to_str().unwrap();
    raw_ok(d.path(), &["init-labels", "--file", f]);
    assert_eq!(
        raw(d.path(), &["create-namespace", "--file", f, "-s", "16M"])
            .status
            .code(),
        Some(2),
        "no cookie, no region"
    );
    raw_ok(
        d.path(),
        &[
            "create-namespace",
            "--file",
            f,
            "--cookie",
            "9",
            "--region-size",
            "64M",
            "-s",
            "16M",
        ],
    );
    let r = raw_ok(d.path(), &["read-labels", "--file", f]);
    assert_eq!(r["index"][0]["nslot"], 1020);
    assert_eq!(r["label"][0]["isetcookie"], 9);
    assert_eq!(
        raw_ok(d.path(), &["check-labels", "--file", f])["verified"],
        true
    );
}

#[test]
fn selftest_on_a_host_whose_card_is_not_bound_fails_with_the_fix() {
    let d = tempfile::tempdir().unwrap();
    let sys = d.path().join("sys");
    let dev = sys.join("bus/pci/devices/0000:01:00.1");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("vendor"), "0x1014\n").unwrap();
    std::fs::write(dev.join("device"), "0x0625\n").unwrap();
    let o = raw(
        d.path(),
        &["--sysfs-root", sys.to_str().unwrap(), "selftest"],
    );
    assert_eq!(o.status.code(), Some(1));
    let v = json(&o);
    let first = &v["steps"][0];
    assert_eq!(first["step"], "sysfs_discovery");
    assert_eq!(first["result"], "fail");
    assert!(
        first["detail"].as_str().unwrap().contains("vfio-pci"),
        "{first}"
    );
}

#[test]
fn list_without_a_device_scans_sysfs_and_bind_names_what_is_missing() {
    let d = tempfile::tempdir().unwrap();
    let sys = d.path().join("sys");
    let dev = sys.join("bus/pci/devices/0000:01:00.1");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("vendor"), "0x1014\n").unwrap();
    std::fs::write(dev.join("device"), "0x0625\n").unwrap();
    std::fs::write(dev.join("class"), "0x120000\n").unwrap();
    let root = sys.to_str().unwrap();
    let cards = raw_ok(d.path(), &["--sysfs-root", root, "list"]);
    let cards = cards.as_array().unwrap();
    assert_eq!(cards.len(), 1);
    assert_eq!(cards[0]["functions"][0]["bdf"], "0000:01:00.1");
    assert_eq!(cards[0]["functions"][0]["binding"], "none");
    // vfio-pci is not loaded in this tree: bind says so and changes nothing.
    let o = raw(d.path(), &["--sysfs-root", root, "bind", "0000:01:00.1"]);
    assert_ne!(o.status.code(), Some(0));
    let e = json(&o);
    assert!(
        e["error"]["message"].as_str().unwrap().contains("vfio-pci"),
        "{e}"
    );
    assert!(
        !dev.join("driver_override").exists()
            || std::fs::read_to_string(dev.join("driver_override"))
                .unwrap()
                .trim()
                .is_empty()
    );
    // --index picks among the cards found; there is no card 1.
    assert_eq!(
        raw(d.path(), &["--sysfs-root", root, "--index", "1", "info"])
            .status
            .code(),
        Some(3)
    );
    assert_eq!(raw(d.path(), &["bind", "not-a-bdf"]).status.code(), Some(2));
}
