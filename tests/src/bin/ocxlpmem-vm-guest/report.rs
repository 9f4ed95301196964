//! The guest's check report: one line per check on the serial console, counted by the
//! host (`tests/vm/run`). A check that cannot run because an earlier one failed is a
//! failure too ("needs ..."), so a broken step never hides the ones behind it.

use std::io::Write;
use std::time::Instant;

/// The prefix the host greps for; nothing else on the console starts with it.
pub const TAG: &str = "OCXLVM";

/// Counts and prints check results.
#[derive(Debug, Default)]
pub struct Report {
    passed: u32,
    failed: u32,
}

impl Report {
    /// Runs `f` as check `name`, prints `OCXLVM PASS|FAIL name (ms): detail`, and returns
    /// its value on success.
    pub fn check<T>(
        &mut self,
        name: &str,
        f: impl FnOnce() -> Result<(T, String), String>,
    ) -> Option<T> {
        let t0 = Instant::now();
        let r = f();
        let ms = t0.elapsed().as_secs_f64() * 1e3;
        match r {
            Ok((v, detail)) => {
                self.passed += 1;
                line(&format!("{TAG} PASS {name} ({ms:.1} ms): {detail}"));
                Some(v)
            }
            Err(e) => {
                self.failed += 1;
                line(&format!("{TAG} FAIL {name} ({ms:.1} ms): {e}"));
                None
            }
        }
    }

    /// Records check `name` as failed because `needs` did not succeed.
    pub fn blocked(&mut self, name: &str, needs: &str) {
        self.failed += 1;
        line(&format!("{TAG} FAIL {name}: not run, needs {needs}"));
    }

    /// Prints the closing line of this boot and returns whether every check passed.
    pub fn finish(&self, phase: &str) -> bool {
        line(&format!(
            "{TAG} DONE phase={phase} passed={} failed={}",
            self.passed, self.failed
        ));
        self.failed == 0
    }
}

/// Prints a whole line and flushes it: the console is shared with the kernel's messages,
/// and a line cut by a crash must not look like a result.
pub fn line(s: &str) {
    let mut out = std::io::stdout().lock();
    // Nothing useful can be done when the console itself fails.
    let _ = writeln!(out, "{s}");
    let _ = out.flush();
}
