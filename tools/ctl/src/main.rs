//! `ocxlpmem-ctl`: the diagnostic and management tool (ndctl / nvme-cli style).
//!
//! Every command fetches typed values from the card and hands them to [`output::emit`];
//! errors carry the exit code and what to do ([`output::CtlError`]).

mod commands;
mod ns;
mod output;
mod selftest;
mod target;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use output::{exit, parse_size, parse_u64, Format};

/// Diagnostics and management for IBM OpenCAPI persistent-memory cards.
#[derive(Parser, Debug)]
#[command(name = "ocxlpmem-ctl", version, about)]
pub struct Cli {
    /// Output format.
    #[arg(
        short = 'o',
        long = "output",
        value_enum,
        default_value = "text",
        global = true
    )]
    pub format: Format,
    #[command(flatten)]
    pub device: DeviceArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Device selection (one of them; `--sim` is the embedded simulated card).
#[derive(Args, Debug, Clone)]
pub struct DeviceArgs {
    /// Use the embedded simulated card (its memory lives in an image file).
    #[arg(long, global = true)]
    pub sim: bool,
    /// Image file of the simulated card (default: $XDG_STATE_HOME/ocxlpmem/sim.img).
    #[arg(long, value_name = "PATH", global = true)]
    pub sim_image: Option<PathBuf>,
    /// Serial number of a new simulated card (fixed when its image is created).
    #[arg(long, value_name = "N", value_parser = parse_u64, global = true)]
    pub sim_serial: Option<u64>,
    /// LPC memory size of a new simulated card (power of two >= 32M; fixed at creation).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, global = true)]
    pub sim_size: Option<u64>,
    /// TESTING AID: inject a simulator fault (repeatable).
    #[arg(long, value_name = "NAME", global = true, hide = true)]
    pub sim_fault: Vec<String>,
    /// TESTING AID: queue N error-log entries on the simulated card at open.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 0,
        global = true,
        hide = true
    )]
    pub sim_error_logs: u32,
    /// PCI address of a real card (function 1), e.g. 0000:01:00.1.
    #[arg(long, value_name = "BDF", global = true)]
    pub bdf: Option<String>,
    /// Index of the card among those found.
    #[arg(long, value_name = "N", global = true)]
    pub index: Option<usize>,
    /// A vfio-user socket served by `ocxlpmem-sim serve`.
    #[arg(long, value_name = "SOCKET", global = true)]
    pub vfio_user: Option<PathBuf>,
    /// The proposed kernel driver's char device, e.g. /dev/ocxlpmem0.
    #[arg(long, value_name = "DEV", global = true)]
    pub kernel: Option<PathBuf>,
    /// How long to wait for the card to become ready, in milliseconds (default: the
    /// card's own worst case from CCAP0).
    #[arg(long, value_name = "MS", global = true)]
    pub ready_timeout: Option<u64>,
    /// Where the global MMIO area is, as BAR:OFFSET:SIZE, for kernels whose vfio-pci
    /// hides the DVSECs (the AFU descriptor says it otherwise).
    #[arg(long, value_name = "BAR:OFFSET:SIZE", global = true)]
    pub mmio: Option<ocxlpmem::device::MmioLocation>,
    /// The media window of a card reached over kernel VFIO (its memory is not a BAR on
    /// POWER9): devdax:/dev/daxX.Y[@OFFSET], daxfile:PATH, devmem:ADDR[+LEN] or file:PATH.
    #[arg(long, value_name = "SPEC", global = true)]
    pub media: Option<ocxlpmem::media::spec::MediaSpec>,
    /// Label commands on an image (--file): the card's serial number, which is the
    /// labels' interleave-set cookie (a sim image's sidecar gives it otherwise).
    #[arg(long, value_name = "N", value_parser = parse_u64, global = true)]
    pub cookie: Option<u64>,
    /// Label commands on a bare label-area image (--file): the size of the region its
    /// namespaces live in.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, global = true)]
    pub region_size: Option<u64>,
    /// TESTING AID: where sysfs is mounted.
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/sys",
        global = true,
        hide = true
    )]
    pub sysfs_root: PathBuf,
    /// Allow debug and destructive commands.
    #[arg(long = "unsafe", global = true)]
    pub allow_unsafe: bool,
}

impl DeviceArgs {
    /// The readiness bound, if one was given.
    pub fn ready_timeout(&self) -> Option<Duration> {
        self.ready_timeout.map(Duration::from_millis)
    }
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// List cards, with their dimm (-D) and pmem region (-R).
    List {
        /// Include each card's DIMM.
        #[arg(short = 'D', long)]
        dimms: bool,
        /// Include each card's pmem region.
        #[arg(short = 'R', long)]
        regions: bool,
        /// Include each region's namespaces.
        #[arg(short = 'N', long)]
        namespaces: bool,
        /// Only the card with this serial number.
        #[arg(long, value_parser = parse_u64)]
        serial: Option<u64>,
    },
    /// Identity and state of the card.
    Info,
    /// One HEARTBEAT round trip.
    Heartbeat,
    /// Health summary (ndctl-style) from SMART and CHI.
    Health,
    /// Raw SMART attributes.
    Smart,
    /// Drain and print every error-log entry.
    ErrorLog,
    /// Controller statistics.
    Stats,
    /// Ask the card for a health & performance log (arrives in the error log).
    RequestHealth,
    /// Take a controller dump into a file.
    ControllerDump {
        /// Output file.
        #[arg(long, short = 'f', value_name = "PATH")]
        file: PathBuf,
    },
    /// Print card events as JSON lines (like `ndctl monitor`).
    Monitor {
        /// Stop after this many events.
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many milliseconds.
        #[arg(long)]
        timeout: Option<u64>,
    },
    /// Dump the label area (binary to a file, or a summary).
    ReadLabels {
        /// Operate on a label-area image file instead of a card.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Write the raw bytes here.
        #[arg(long = "output-file", short = 'O', value_name = "PATH")]
        output_file: Option<PathBuf>,
    },
    /// Write a raw label-area image to the card or file.
    WriteLabels {
        /// Operate on a label-area image file instead of a card.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// The image to write.
        #[arg(long, short = 'i', value_name = "PATH")]
        input: PathBuf,
    },
    /// Zero the label area.
    ZeroLabels {
        /// Operate on a label-area image file instead of a card.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Write an empty label area (both index blocks), like `ndctl init-labels`.
    InitLabels {
        /// Operate on an image file instead of a card.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Label format version: 1.1 (128-byte labels, ndctl's default) or 1.2.
        #[arg(short = 'V', long = "label-version", default_value = "1.1")]
        version: String,
        /// Overwrite valid labels (every namespace is forgotten).
        #[arg(short = 'f', long)]
        force: bool,
    },
    /// Validate the label area (exit 1 unless it holds a clean label set).
    CheckLabels {
        /// Operate on an image file instead of a card.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
    },
    /// Create a namespace in the first free extent that fits.
    CreateNamespace {
        /// Operate on an image file instead of a card.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// Size (default: the largest free extent).
        #[arg(short = 's', long, value_parser = parse_size)]
        size: Option<u64>,
        /// Name (up to 63 bytes).
        #[arg(short = 'n', long, default_value = "")]
        name: String,
        /// UUID (default: a random one).
        #[arg(short = 'u', long, value_parser = ns::parse_uuid)]
        uuid: Option<uuid::Uuid>,
        /// Alignment of offset and size (default 2M).
        #[arg(short = 'a', long, value_parser = parse_size)]
        align: Option<u64>,
    },
    /// Destroy a namespace (by UUID, device name or label name).
    DestroyNamespace {
        /// Operate on an image file instead of a card.
        #[arg(long, value_name = "PATH")]
        file: Option<PathBuf>,
        /// The namespace.
        namespace: String,
    },
    /// Bind functions to vfio-pci (through driver_override), like dpdk-devbind.
    Bind {
        /// PCI addresses (function 1 of each card).
        #[arg(required = true)]
        bdfs: Vec<String>,
        /// Take a function from another driver (e.g. ocxl) even though it may be in use.
        #[arg(long)]
        force: bool,
    },
    /// Unbind a function from its driver (clears driver_override).
    Unbind {
        /// PCI address.
        bdf: String,
    },
    /// Read one global-MMIO register (debug; needs --unsafe).
    MmioRead {
        /// Offset (8-byte aligned).
        #[arg(value_parser = parse_u64)]
        offset: u64,
    },
    /// Write one global-MMIO register (debug; needs --unsafe).
    MmioWrite {
        /// Offset (8-byte aligned).
        #[arg(value_parser = parse_u64)]
        offset: u64,
        /// Value.
        #[arg(value_parser = parse_u64)]
        value: u64,
    },
    /// Run a firmware debug action (debug; needs --unsafe).
    FwDebug {
        /// Action (1 read memory, 2 write memory, 3 enable, 4 disable, 5 persistent log).
        #[arg(long, value_parser = parse_u64)]
        action: u64,
        /// Function code.
        #[arg(long, value_parser = parse_u64, default_value = "0")]
        function_code: u64,
        /// Parameter 1.
        #[arg(long, value_parser = parse_u64, default_value = "0")]
        param1: u64,
        /// Parameter 2.
        #[arg(long, value_parser = parse_u64, default_value = "0")]
        param2: u64,
        /// Bytes of output to keep.
        #[arg(long, value_parser = parse_size, default_value = "256")]
        out_size: u64,
    },
    /// Send a firmware image to the card (needs --unsafe).
    FwUpdate {
        /// The image (length a multiple of 8).
        #[arg(long, short = 'i', value_name = "PATH")]
        image: PathBuf,
    },
    /// Shut the controller down (needs --unsafe).
    Shutdown,
    /// Erase the media (destroys all data; needs --unsafe).
    SecureErase,
    /// Hardware-in-the-loop suite (non-destructive unless --destructive).
    Selftest {
        /// Also run destructive steps (controller dump, label writes) on a scratch card.
        #[arg(long)]
        destructive: bool,
    },
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let code = match commands::run(&cli) {
        Ok(code) => code,
        Err(e) => {
            e.report(cli.format);
            e.code
        }
    };
    std::process::exit(code);
}
