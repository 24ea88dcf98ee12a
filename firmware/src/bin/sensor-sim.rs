//! Simulated sensor node: the real node tasks, a radio replaying a JSON-lines trace (format in
//! `loyalty_firmware::sim`), and the uplink on a pseudo-terminal it creates or on a serial port.
//!
//! ```text
//! sensor-sim --trace FILE [--serial PATH [--baud N] | --link PATH] [--node-id N] [--board NAME]
//!            [--report-ms N] [--heartbeat-ms N] [--forward-raw] [--repeat] [--exit-after-ms N]
//! ```
//! Without `--serial` it creates a pseudo-terminal and prints the slave's path alone on the
//! first line of stdout (`--link PATH` also symlinks it to PATH for a stable name in
//! `agent.toml`); the agent opens that path as a serial port. Everything else goes to stderr.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::rc::Rc;

use embassy_futures::select::{select, Either};
use embassy_time::{Duration, Instant, Timer};
use loyalty_firmware::ibeacon::IBeacon;
use loyalty_firmware::node::{self, NodeConfig};
use loyalty_firmware::sim::{self, SerialReader, SerialWriter, TraceRadio};

/// Simulated store beacon: a fixed UUID for the demo store.
const DEMO_BEACON_UUID: [u8; 16] = *b"LoyaltyEdgeDemo!";

/// Simulated zone-sensor node: replays a sighting trace through the real node tasks and sends
/// its frames on a pseudo-terminal (or a serial port), as a node on a USB cable would.
#[derive(Debug, clap::Parser)]
#[command(name = "sensor-sim", version)]
struct Args {
    /// JSON-lines trace of adverts to replay (format in `loyalty_firmware::sim`).
    #[arg(long)]
    trace: PathBuf,
    /// Send the uplink on this serial port instead of a new pseudo-terminal.
    #[arg(long, conflicts_with = "link")]
    serial: Option<PathBuf>,
    /// Baud rate of `--serial`.
    #[arg(long, default_value_t = 115_200, requires = "serial")]
    baud: u32,
    /// Symlink the pseudo-terminal to this path, a stable name for `agent.toml`.
    #[arg(long)]
    link: Option<PathBuf>,
    /// The node id it says hello with.
    #[arg(long, default_value_t = 1)]
    node_id: u64,
    /// The board name it says hello with.
    #[arg(long, default_value = "sim")]
    board: String,
    /// Milliseconds between aggregated reports.
    #[arg(long, default_value_t = 1000)]
    report_ms: u64,
    /// Milliseconds between heartbeats.
    #[arg(long, default_value_t = 5000)]
    heartbeat_ms: u64,
    /// Also forward every raw advert.
    #[arg(long)]
    forward_raw: bool,
    /// Start the trace again when it ends.
    #[arg(long)]
    repeat: bool,
    /// Exit after this many milliseconds.
    #[arg(long)]
    exit_after_ms: Option<u64>,
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    let trace = match sim::load_trace(&args.trace) {
        Ok(trace) => Rc::new(trace),
        Err(errors) => {
            for e in errors {
                eprintln!("sensor-sim: {e}");
            }
            return ExitCode::from(2);
        }
    };
    // Kept alive for the whole run: dropping it closes the pty.
    let mut _pty = None;
    let link = match &args.serial {
        Some(path) => sim::open_serial(path, args.baud)
            .map_err(|e| format!("cannot open {}: {e}", path.display())),
        None => sim::open_pty()
            .and_then(|pty| {
                if let Some(link) = &args.link {
                    let _ = std::fs::remove_file(link);
                    std::os::unix::fs::symlink(&pty.path, link)?;
                }
                println!("{}", pty.path.display());
                std::io::stdout().flush()?;
                let halves = pty.split()?;
                _pty = Some(pty);
                Ok(halves)
            })
            .map_err(|e| format!("cannot create a pseudo-terminal: {e}")),
    };
    let (rx, tx) = match link {
        Ok(halves) => halves,
        Err(e) => {
            eprintln!("sensor-sim: {e}");
            return ExitCode::FAILURE;
        }
    };
    let board: &'static str = Box::leak(args.board.clone().into_boxed_str());
    let mut config = NodeConfig::new(
        args.node_id,
        board,
        IBeacon {
            uuid: DEMO_BEACON_UUID,
            major: 1,
            minor: u16::try_from(args.node_id & 0xFFFF).unwrap_or(0),
            measured_power: -59,
        },
    );
    config.report_interval = Duration::from_millis(args.report_ms.max(1));
    config.heartbeat_interval = Duration::from_millis(args.heartbeat_ms.max(1));
    config.forward_raw = args.forward_raw;
    eprintln!(
        "sensor-sim: node {} replaying {} advertisements and {} check-ins from {}",
        args.node_id,
        trace.adverts.len(),
        trace.check_ins.len(),
        args.trace.display()
    );
    let link = args.link.clone();
    sim::block_on(simulate(trace, args, config, rx, tx));
    if let Some(link) = link {
        let _ = std::fs::remove_file(link);
    }
    ExitCode::SUCCESS
}

async fn simulate(
    trace: Rc<sim::Trace>,
    args: Args,
    config: NodeConfig,
    mut rx: SerialReader,
    mut tx: SerialWriter,
) {
    let deadline = async {
        match args.exit_after_ms {
            Some(ms) => Timer::after(Duration::from_millis(ms)).await,
            None => core::future::pending().await,
        }
    };
    let node = async {
        loop {
            // A reboot restarts the node (and the trace) as a real reset would.
            let radio = TraceRadio::new(trace.clone(), Instant::now(), args.repeat);
            let exit = node::run(radio, &mut tx, &mut rx, config.clone()).await;
            eprintln!("sensor-sim: node exited ({exit:?}), restarting as after a reset");
        }
    };
    if let Either::First(()) = select(deadline, node).await {
        eprintln!("sensor-sim: --exit-after-ms reached");
    }
}
