//! The `ocxlpmem-sim` command line: `ocxlpmem-sim serve --socket PATH [options]`.
//!
//! SIGTERM, SIGINT and SIGHUP are blocked in every thread (before the card starts its
//! firmware thread, which inherits the mask) and read from a signalfd that the server
//! polls next to its sockets, so a signal ends the server between messages, cleanly, and
//! the socket file is removed.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use tracing::{error, info};

use super::{ServeEnd, Server};
use crate::{SimCard, SimConfig};

/// The simulated OpenCAPI persistent-memory card.
#[derive(Debug, Parser)]
#[command(name = "ocxlpmem-sim", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the card (PCI function 1) over vfio-user on a UNIX socket, one client at a
    /// time, until SIGTERM or the idle timeout.
    Serve(ServeArgs),
}

/// Options of `serve`.
#[derive(Debug, Args)]
struct ServeArgs {
    /// Socket path to listen on (a stale socket there is replaced).
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// Device serial number (DSN); decimal or 0x-hex.
    #[arg(long, value_name = "N", value_parser = parse_u64)]
    serial: Option<u64>,
    /// LPC memory size: a power of two, at least 32 MiB; suffixes K, M, G allowed.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    lpc_size: Option<u64>,
    /// Back the LPC memory by this file (created or extended) instead of a memfd, so its
    /// contents outlive the server.
    #[arg(long, value_name = "PATH")]
    image: Option<PathBuf>,
    /// Make the command blocks and data buffers mmap-able (sparse areas of BAR 0); the
    /// register file stays trapped.
    #[arg(long)]
    mmap_command_areas: bool,
    /// Exit after this many seconds without a connection or a message.
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<f64>,
    /// Delay from power-on/reset to CHI.CRDY, in milliseconds.
    #[arg(long, value_name = "MS")]
    crdy_delay_ms: Option<u64>,
    /// Delay from power-on/reset to CHI.MA, in milliseconds.
    #[arg(long, value_name = "MS")]
    ma_delay_ms: Option<u64>,
}

fn parse_u64(s: &str) -> Result<u64, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("{s:?} is not a number: {e}"))
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, shift) = match s.chars().last() {
        Some('K' | 'k') => (&s[..s.len() - 1], 10),
        Some('M' | 'm') => (&s[..s.len() - 1], 20),
        Some('G' | 'g') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n = parse_u64(digits)?;
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| format!("{s:?} does not fit in 64 bits"))
}

/// Runs the command line of the `ocxlpmem-sim` binary.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

/// Runs the command line `args` (the first item is the program name).
pub fn run<I: IntoIterator<Item = OsString>>(args: I) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    init_logging();
    let Command::Serve(args) = cli.command;
    match serve(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("ocxlpmem-sim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("OCXLPMEM_SIM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal, not in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

fn serve(args: ServeArgs) -> Result<(), String> {
    // Block the stop signals first: threads started from here on inherit the mask, so
    // the signals are only ever read from the signalfd.
    let mut signals = SigSet::empty();
    for s in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        signals.add(s);
    }
    nix::sys::signal::pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .map_err(|e| format!("blocking SIGTERM: {e}"))?;
    let stop = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(|e| format!("creating a signalfd: {e}"))?;

    let idle = match args.timeout {
        None => None,
        Some(s) if s.is_finite() && s > 0.0 => Some(Duration::from_secs_f64(s)),
        Some(s) => {
            return Err(format!(
                "--timeout {s} must be a positive number of seconds"
            ))
        }
    };
    let mut cfg = SimConfig::default();
    if let Some(serial) = args.serial {
        cfg.serial = serial;
    }
    if let Some(size) = args.lpc_size {
        cfg.lpc_size = size;
    }
    cfg.image = args.image;
    cfg.mmap_command_areas = args.mmap_command_areas;
    if let Some(ms) = args.crdy_delay_ms {
        cfg.crdy_delay = Duration::from_millis(ms);
    }
    if let Some(ms) = args.ma_delay_ms {
        cfg.ma_delay = Duration::from_millis(ms);
    }
    let card = SimCard::new(cfg).map_err(|e| format!("creating the simulated card: {e}"))?;
    let server = Server::bind(&args.socket).map_err(|e| e.to_string())?;
    let end = server
        .run(&card, stop.as_fd(), idle)
        .map_err(|e| e.to_string())?;
    match end {
        ServeEnd::Stopped => info!("stop signal received; exiting"),
        ServeEnd::Idle => info!("idle timeout; exiting"),
    }
    // Dropping the server removes the socket file.
    drop(server);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_suffixes() {
        assert_eq!(parse_size("256M"), Ok(256 << 20));
        assert_eq!(parse_size("0x2000000"), Ok(32 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn serve_requires_a_socket() {
        assert!(Cli::try_parse_from(["ocxlpmem-sim", "serve"]).is_err());
        let cli = Cli::try_parse_from([
            "ocxlpmem-sim",
            "serve",
            "--socket",
            "/x",
            "--serial",
            "0x12",
            "--mmap-command-areas",
        ])
        .expect("valid command line");
        let Command::Serve(a) = cli.command;
        assert_eq!((a.serial, a.mmap_command_areas), (Some(0x12), true));
    }
}
