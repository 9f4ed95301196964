//! A media window named by one string, as a command line gives it (`--media SPEC`):
//!
//! | Spec | Window |
//! |---|---|
//! | `devdax:/dev/dax0.0`, `devdax:/dev/dax0.0@2M`, or a bare `/dev/daxX.Y` | [`DaxWindow`] on the device (at an offset) |
//! | `daxfile:/mnt/pmem/card0` | [`DaxWindow`] on a DAX-filesystem file |
//! | `devmem:0x6030000000000`, `devmem:0x6030000000000+64G` | [`DevMemWindow`] (length defaults to lpc_size) |
//! | `file:/tmp/media` | [`FileWindow`] |
//!
//! Numbers are decimal or `0x` hex, with an optional `K`, `M`, `G` or `T` suffix (powers of
//! 1024).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::devdax::{DaxDevice, DaxWindow};
use super::devmem::{DevMemWindow, DEV_MEM};
use super::file::{FileWindow, WindowError};
use super::MediaWindow;

/// Which media window to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaSpec {
    /// A device-dax device, from `offset`.
    DevDax {
        /// `/dev/daxX.Y`.
        path: PathBuf,
        /// Where the window starts in the device.
        offset: u64,
    },
    /// A file on a DAX filesystem.
    DaxFile(PathBuf),
    /// A physical range through `/dev/mem`.
    DevMem {
        /// Physical address.
        addr: u64,
        /// Length; `None` means lpc_size.
        len: Option<u64>,
    },
    /// A plain file.
    File(PathBuf),
}

/// A spec string that cannot be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("media spec {spec:?}: {why}. Expected devdax:/dev/daxX.Y[@OFFSET], daxfile:PATH, devmem:ADDR[+LEN] or file:PATH")]
pub struct MediaSpecError {
    /// What was given.
    pub spec: String,
    /// What is wrong with it.
    pub why: String,
}

/// Parses `0x1000`, `4096`, `2M`, `0x10G`.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, shift) = match s.as_bytes().last()? {
        b'K' | b'k' => (&s[..s.len() - 1], 10),
        b'M' | b'm' => (&s[..s.len() - 1], 20),
        b'G' | b'g' => (&s[..s.len() - 1], 30),
        b'T' | b't' => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    let n = match digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
    {
        Some(h) => u64::from_str_radix(h, 16).ok()?,
        None => digits.parse().ok()?,
    };
    n.checked_mul(1u64 << shift)
}

impl FromStr for MediaSpec {
    type Err = MediaSpecError;

    fn from_str(s: &str) -> Result<MediaSpec, MediaSpecError> {
        let err = |why: &str| MediaSpecError {
            spec: s.to_string(),
            why: why.to_string(),
        };
        let number = |t: &str, what: &str| {
            parse_size(t).ok_or_else(|| err(&format!("{what} {t:?} is not a number")))
        };
        let nonempty = |p: &str| {
            if p.is_empty() {
                Err(err("the path is empty"))
            } else {
                Ok(PathBuf::from(p))
            }
        };
        if let Some(rest) = s.strip_prefix("devdax:") {
            let (path, offset) = match rest.rsplit_once('@') {
                Some((p, o)) => (p, number(o, "offset")?),
                None => (rest, 0),
            };
            return Ok(MediaSpec::DevDax {
                path: nonempty(path)?,
                offset,
            });
        }
        if let Some(rest) = s.strip_prefix("daxfile:") {
            return Ok(MediaSpec::DaxFile(nonempty(rest)?));
        }
        if let Some(rest) = s.strip_prefix("file:") {
            return Ok(MediaSpec::File(nonempty(rest)?));
        }
        if let Some(rest) = s.strip_prefix("devmem:") {
            let (addr, len) = match rest.split_once('+') {
                Some((a, l)) => (a, Some(number(l, "length")?)),
                None => (rest, None),
            };
            return Ok(MediaSpec::DevMem {
                addr: number(addr, "address")?,
                len,
            });
        }
        let name = s.rsplit('/').next().unwrap_or_default();
        if s.starts_with('/') && name.starts_with("dax") && name.contains('.') {
            return Ok(MediaSpec::DevDax {
                path: PathBuf::from(s),
                offset: 0,
            });
        }
        Err(err("unknown kind"))
    }
}

impl fmt::Display for MediaSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaSpec::DevDax { path, offset: 0 } => write!(f, "devdax:{}", path.display()),
            MediaSpec::DevDax { path, offset } => {
                write!(f, "devdax:{}@{offset:#x}", path.display())
            }
            MediaSpec::DaxFile(p) => write!(f, "daxfile:{}", p.display()),
            MediaSpec::DevMem { addr, len: None } => write!(f, "devmem:{addr:#x}"),
            MediaSpec::DevMem { addr, len: Some(l) } => write!(f, "devmem:{addr:#x}+{l:#x}"),
            MediaSpec::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

impl MediaSpec {
    /// Opens the window; it must be exactly `lpc_size` bytes when that is given.
    pub fn open(&self, lpc_size: Option<u64>) -> Result<Box<dyn MediaWindow>, WindowError> {
        Ok(match self {
            MediaSpec::DevDax { path, offset } => {
                let d = DaxDevice::new(path).offset(*offset);
                Box::new(
                    match lpc_size {
                        Some(n) => d.lpc_size(n),
                        None => d,
                    }
                    .open()?,
                )
            }
            MediaSpec::DaxFile(p) => Box::new(DaxWindow::open_file(p, lpc_size)?),
            MediaSpec::DevMem { addr, len } => {
                let len = len.or(lpc_size).ok_or_else(|| WindowError::Unsupported {
                    path: PathBuf::from(DEV_MEM),
                    why: format!(
                        "no length for the range at {addr:#x}: give devmem:ADDR+LEN or the \
                         card's lpc_size"
                    ),
                })?;
                Box::new(DevMemWindow::open(*addr, len, lpc_size)?)
            }
            MediaSpec::File(p) => {
                let n = match lpc_size {
                    Some(n) => n,
                    None => std::fs::metadata(p)
                        .map_err(super::file::io_err(p, "stat"))?
                        .len(),
                };
                Box::new(FileWindow::open(p, n)?)
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{MediaKind, LABEL_AREA_SIZE};
    use super::*;

    fn spec(s: &str) -> MediaSpec {
        s.parse().unwrap()
    }

    #[test]
    fn every_kind_parses_and_prints_back() {
        assert_eq!(
            spec("devdax:/dev/dax0.0@2M"),
            MediaSpec::DevDax {
                path: "/dev/dax0.0".into(),
                offset: 2 << 20
            }
        );
        assert_eq!(
            spec("/dev/dax1.0"),
            MediaSpec::DevDax {
                path: "/dev/dax1.0".into(),
                offset: 0
            }
        );
        assert_eq!(
            spec("devmem:0x6030000000000+64G"),
            MediaSpec::DevMem {
                addr: 0x6_0300_0000_0000,
                len: Some(64 << 30)
            }
        );
        assert_eq!(
            spec("daxfile:/mnt/pmem/c0"),
            MediaSpec::DaxFile("/mnt/pmem/c0".into())
        );
        assert_eq!(spec("file:/tmp/m"), MediaSpec::File("/tmp/m".into()));
        for s in [
            "devdax:/dev/dax0.0",
            "devdax:/dev/dax0.0@0x200000",
            "daxfile:/x",
            "devmem:0x1000",
            "devmem:0x1000+0x2000",
            "file:/tmp/m",
        ] {
            assert_eq!(spec(s).to_string(), s);
        }
    }

    #[test]
    fn bad_specs_say_what_is_wrong_and_what_is_expected() {
        for (s, why) in [
            ("nvme:/dev/nvme0", "unknown kind"),
            ("devmem:zz", "address \"zz\" is not a number"),
            ("devmem:0x1000+", "length \"\" is not a number"),
            ("devdax:/dev/dax0.0@1Q", "offset \"1Q\" is not a number"),
            ("file:", "the path is empty"),
            ("devmem:0xffffffffffffffffK", "not a number"),
        ] {
            let m = s.parse::<MediaSpec>().unwrap_err().to_string();
            assert!(
                m.contains(why) && m.contains("devdax:/dev/daxX.Y"),
                "{s}: {m}"
            );
        }
    }

    #[test]
    fn sizes_take_hex_decimal_and_binary_suffixes() {
        assert_eq!(parse_size("4096"), Some(4096));
        assert_eq!(parse_size("0x1000"), Some(4096));
        assert_eq!(parse_size("16M"), Some(16 << 20));
        assert_eq!(parse_size("0x2g"), Some(2 << 30));
        assert_eq!(parse_size("1T"), Some(1 << 40));
        assert_eq!(parse_size(""), None);
        assert_eq!(parse_size("M"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn file_spec_opens_with_or_without_lpc_size() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("m");
        let size = LABEL_AREA_SIZE + (4 << 20);
        std::fs::File::create(&p).unwrap().set_len(size).unwrap();
        let s = MediaSpec::File(p.clone());
        assert_eq!(s.open(None).unwrap().len(), size);
        let w = s.open(Some(size)).unwrap();
        assert_eq!(w.kind(), MediaKind::File);
        assert!(matches!(
            s.open(Some(size * 2)).unwrap_err(),
            WindowError::SizeMismatch { .. }
        ));
    }

    #[test]
    fn devmem_spec_without_a_length_needs_lpc_size() {
        let e = spec("devmem:0x100000000").open(None).unwrap_err();
        assert!(e.to_string().contains("devmem:ADDR+LEN"), "{e}");
    }
}
