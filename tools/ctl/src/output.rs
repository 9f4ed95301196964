//! Output formats, the error type of every command and the documented exit codes.
//!
//! Fetching and rendering are apart: each command builds a serde value, and this module
//! prints it as stable snake_case JSON or as indented `key: value` text.

use serde::Serialize;
use serde_json::Value;

/// Exit codes (documented in the README, section "Using ocxlpmem-ctl").
pub mod exit {
    /// Success.
    pub const OK: i32 = 0;
    /// The command ran and failed (device status, check failed, selftest step failed).
    pub const FAILED: i32 = 1;
    /// Bad arguments (clap's code too).
    pub const USAGE: i32 = 2;
    /// No such device / file, or the device could not be opened.
    pub const NOT_FOUND: i32 = 3;
    /// The device misbehaved: timeout, fatal state, gone, protocol error.
    pub const DEVICE: i32 = 4;
    /// A debug or destructive command without `--unsafe`.
    pub const REFUSED: i32 = 5;
    /// The operation is not available on the selected device kind.
    pub const UNSUPPORTED: i32 = 6;
    /// selftest: no card present, suite skipped (the automake "skip" code).
    pub const SKIPPED: i32 = 77;
}

/// Output format (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Human-readable `key: value` lines.
    Text,
    /// One JSON document (monitor: one JSON object per line).
    Json,
}

/// A command's failure: what went wrong, what to do, and the exit code.
#[derive(Debug)]
pub struct CtlError {
    /// Exit code (see [`exit`]).
    pub code: i32,
    /// What went wrong.
    pub message: String,
    /// What to do about it, when known.
    pub hint: Option<String>,
}

impl CtlError {
    /// An error with `code`.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds what to do.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prints the error to stderr (and, with JSON output, as a JSON object on stdout so
    /// scripts parsing stdout always get a document).
    pub fn report(&self, format: Format) {
        eprintln!("ocxlpmem-ctl: error: {}", self.message);
        if let Some(h) = &self.hint {
            eprintln!("ocxlpmem-ctl: hint: {h}");
        }
        if format == Format::Json {
            let v = serde_json::json!({
                "error": { "message": self.message, "hint": self.hint, "exit_code": self.code }
            });
            println!("{v}");
        }
    }
}

impl From<ocxlpmem_admin::AdminError> for CtlError {
    fn from(e: ocxlpmem_admin::AdminError) -> Self {
        use ocxlpmem_admin::AdminError as A;
        let (code, hint) = match &e {
            A::Status { .. } | A::EraseIncomplete(_) | A::InvalidArgument { .. } => {
                (exit::FAILED, None)
            }
            A::Timeout { .. } | A::WaitTimeout { .. } => (
                exit::DEVICE,
                Some("the card did not answer in time: run `ocxlpmem-ctl health` and `error-log`; a reset (unbind/bind) may help"),
            ),
            A::Fatal { .. } => (
                exit::DEVICE,
                Some("the card is in a fatal state: take a `controller-dump --unsafe`, then reset or replace it"),
            ),
            A::Gone { .. } => (
                exit::DEVICE,
                Some("the device is gone (removed or EEH-frozen): check `lspci` and dmesg"),
            ),
            _ => (exit::DEVICE, None),
        };
        let mut c = CtlError::new(code, e.to_string());
        c.hint = hint.map(str::to_string);
        c
    }
}

impl From<ocxlpmem::device::DeviceError> for CtlError {
    fn from(e: ocxlpmem::device::DeviceError) -> Self {
        use ocxlpmem::device::DeviceError as D;
        let code = match &e {
            D::Admin {
                source:
                    ocxlpmem_admin::AdminError::Status { .. }
                    | ocxlpmem_admin::AdminError::EraseIncomplete(_)
                    | ocxlpmem_admin::AdminError::InvalidArgument { .. },
                ..
            } => exit::FAILED,
            D::NotACard { .. } => exit::NOT_FOUND,
            D::DvsecHidden { .. } => exit::UNSUPPORTED,
            _ => exit::DEVICE,
        };
        let hint = e.hint();
        let mut c = CtlError::new(code, e.to_string());
        if let Some(h) = hint {
            c = c.hint(h);
        }
        c
    }
}

impl From<ocxlpmem::transport::vfio::VfioError> for CtlError {
    fn from(e: ocxlpmem::transport::vfio::VfioError) -> Self {
        use ocxlpmem::transport::vfio::VfioError as V;
        let code = match &e {
            V::DeviceNotFound { .. } | V::NoIommuGroup { .. } | V::VfioMissing { .. } => {
                exit::NOT_FOUND
            }
            V::PermissionDenied { .. } | V::Busy { .. } => exit::REFUSED,
            V::NoIommuType | V::NotViable { .. } | V::NotBoundToVfio { .. } => exit::UNSUPPORTED,
            _ => exit::DEVICE,
        };
        CtlError::new(code, e.to_string())
    }
}

impl From<ocxlpmem_ioctl::ClientError> for CtlError {
    fn from(e: ocxlpmem_ioctl::ClientError) -> Self {
        let code = match &e {
            ocxlpmem_ioctl::ClientError::Open { .. } => exit::NOT_FOUND,
            _ => exit::DEVICE,
        };
        CtlError::new(code, e.to_string())
    }
}

/// Result of a command.
pub type CtlResult<T> = Result<T, CtlError>;

/// Prints `value` in `format`.
pub fn emit<T: Serialize>(format: Format, value: &T) -> CtlResult<()> {
    let v = serde_json::to_value(value)
        .map_err(|e| CtlError::new(exit::FAILED, format!("cannot serialise output: {e}")))?;
    match format {
        Format::Json => {
            let s = serde_json::to_string_pretty(&v)
                .map_err(|e| CtlError::new(exit::FAILED, e.to_string()))?;
            println!("{s}");
        }
        Format::Text => {
            let mut out = String::new();
            text(&v, 0, &mut out);
            print!("{out}");
        }
    }
    Ok(())
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::Null => Some("-".into()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// Renders a JSON value as indented `key: value` lines.
pub fn text(v: &Value, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match scalar(x) {
                    Some(s) => out.push_str(&format!("{pad}{k}: {s}\n")),
                    None => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        text(x, depth + 1, out);
                    }
                }
            }
        }
        Value::Array(a) => {
            if a.is_empty() {
                out.push_str(&format!("{pad}(none)\n"));
            }
            for (i, x) in a.iter().enumerate() {
                match scalar(x) {
                    Some(s) => out.push_str(&format!("{pad}- {s}\n")),
                    None => {
                        out.push_str(&format!("{pad}[{i}]\n"));
                        text(x, depth + 1, out);
                    }
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", scalar(other).unwrap_or_default())),
    }
}

/// Parses a size such as `4096`, `0x1000`, `32M`, `32MiB`, `1G`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = if let Some(n) = lower.strip_suffix("gib").or(lower.strip_suffix('g')) {
        (n.to_string(), 1u64 << 30)
    } else if let Some(n) = lower.strip_suffix("mib").or(lower.strip_suffix('m')) {
        (n.to_string(), 1 << 20)
    } else if let Some(n) = lower.strip_suffix("kib").or(lower.strip_suffix('k')) {
        (n.to_string(), 1 << 10)
    } else {
        (lower.clone(), 1)
    };
    let n = parse_u64(&num)?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size {t:?} is too large"))
}

/// Parses a decimal or `0x` hexadecimal number.
pub fn parse_u64(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let r = match t.strip_prefix("0x").or(t.strip_prefix("0X")) {
        Some(h) => u64::from_str_radix(&h.replace('_', ""), 16),
        None => t.replace('_', "").parse(),
    };
    r.map_err(|_| format!("{t:?} is not a number (decimal or 0x-hex)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_suffixes() {
        assert_eq!(parse_size("32M"), Ok(32 << 20));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("0x1000"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999G").is_err());
    }

    #[test]
    fn text_rendering_nests() {
        let mut s = String::new();
        text(&serde_json::json!({"a": 1, "b": {"c": [1, 2]}}), 0, &mut s);
        assert_eq!(s, "a: 1\nb:\n  c:\n    - 1\n    - 2\n");
    }
}
