//! Process handling for the vfio-user cross-process tests: the simulator server and the
//! helper client run as child processes, each bounded (an idle timeout on the server, a
//! stdin wait with a timeout in the client) and killed by PID when the test lets go.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use ocxlpmem::transport::vfio_user::{VfioUserOptions, VfioUserTransport};
use ocxlpmem::transport::{region, Transport};

/// How long a test waits for anything a child process does.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// The simulator server in its own process, on a socket in a temporary directory.
pub struct SimServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
}

impl SimServer {
    /// Starts `ocxlpmem-sim serve` with ready-at-once delays plus `extra` arguments, and
    /// waits until it accepts connections.
    pub fn start(extra: &[&str]) -> SimServer {
        let dir = tempfile::tempdir().expect("temporary directory");
        let socket = dir.path().join("sim.sock");
        let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_vfio-user-sim-server"))
            .arg("serve")
            .arg("--socket")
            .arg(&socket)
            // Bounded: the server exits by itself once nobody talks to it for a minute
            // (unless the test gives its own --timeout).
            .args(if extra.contains(&"--timeout") {
                &[][..]
            } else {
                &["--timeout", "60"][..]
            })
            .args(["--crdy-delay-ms", "0", "--ma-delay-ms", "0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn the simulator server");
        let mut s = SimServer {
            child: Some(child),
            dir,
            socket,
        };
        s.wait_listening();
        s
    }

    fn wait_listening(&mut self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!(
                    "the server exited with {status} before listening:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "the server did not listen within {PATIENCE:?}:\n{}",
                self.log()
            );
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The socket path.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's PID.
    pub fn pid(&self) -> Pid {
        Pid::from_raw(self.child.as_ref().map_or(0, |c| c.id() as i32))
    }

    /// Connects a client with a 5 s timeout.
    pub fn connect(&self) -> VfioUserTransport {
        self.connect_with_timeout(Duration::from_secs(5))
    }

    /// Connects a client whose every socket operation is bounded by `timeout`.
    pub fn connect_with_timeout(&self, timeout: Duration) -> VfioUserTransport {
        VfioUserTransport::connect_with(&self.socket, VfioUserOptions { timeout })
            .unwrap_or_else(|e| panic!("connect: {e}\n{}", self.log()))
    }

    /// Sends `signal` and waits (bounded) for the process to end.
    pub fn signal_and_wait(&mut self, signal: Signal) -> ExitStatus {
        kill(self.pid(), signal).expect("signal the server");
        let child = self.child.as_mut().expect("server running");
        let status = wait_bounded(child)
            .unwrap_or_else(|| panic!("the server ignored {signal:?}:\n{}", self.log()));
        self.child = None;
        status
    }

    /// Waits (bounded) for the server to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let child = self.child.as_mut()?;
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            thread::sleep(Duration::from_millis(5));
        }
        None
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits at most [`PATIENCE`] for `child` to exit.
pub fn wait_bounded(child: &mut Child) -> Option<ExitStatus> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(2));
    }
}

/// The helper client process (`vfio-user-client ring SOCKET`), stopped after it rang.
pub struct RingingClient {
    child: Option<Child>,
    _stdin: Option<ChildStdin>,
    /// The command id it issued.
    pub id: u16,
}

impl RingingClient {
    /// Starts the client and waits until it says it rang the doorbell.
    pub fn start(socket: &Path) -> RingingClient {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vfio-user-client"))
            .arg("ring")
            .arg(socket)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the helper client");
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("client stdout");
        // Read its line on a thread so a stuck client cannot hang the test.
        let (tx, rx) = std::sync::mpsc::channel();
        thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let mut c = RingingClient {
            child: Some(child),
            _stdin: stdin,
            id: 0,
        };
        let line = rx.recv_timeout(PATIENCE).unwrap_or_default();
        let id = line
            .strip_prefix("RANG ")
            .and_then(|s| s.trim().parse().ok());
        c.id = id.unwrap_or_else(|| panic!("the client did not ring: {line:?}"));
        c
    }

    /// kill -9, then reap.
    pub fn kill9(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("client running");
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).expect("kill -9 the client");
        wait_bounded(&mut child).expect("the killed client is reaped")
    }
}

impl Drop for RingingClient {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One trapped 64-bit register read of the global MMIO (BAR 0).
pub fn reg(t: &dyn Transport, offset: u64) -> u64 {
    let mut b = [0u8; 8];
    t.region_read(region::BAR0, offset, &mut b)
        .unwrap_or_else(|e| panic!("read register {offset:#x}: {e}"));
    u64::from_le_bytes(b)
}

/// One trapped 64-bit register write.
pub fn set_reg(t: &dyn Transport, offset: u64, value: u64) {
    t.region_write(region::BAR0, offset, &value.to_le_bytes())
        .unwrap_or_else(|e| panic!("write register {offset:#x}: {e}"));
}

/// Polls CHI until `mask` bits are all set, bounded; returns the last CHI seen.
pub fn wait_chi(t: &dyn Transport, mask: u64) -> u64 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let chi = reg(t, ocxlpmem_regs::offsets::CHI);
        if chi & mask == mask || Instant::now() >= deadline {
            return chi;
        }
        thread::sleep(Duration::from_micros(200));
    }
}
