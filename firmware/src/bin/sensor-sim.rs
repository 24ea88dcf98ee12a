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

const USAGE: &str = "usage: sensor-sim --trace FILE [--serial PATH [--baud N] | --link PATH] \
[--node-id N] [--board NAME] [--report-ms N] [--heartbeat-ms N] [--forward-raw] [--repeat] \
[--exit-after-ms N]";

/// Simulated store beacon: a fixed UUID for the demo store.
const DEMO_BEACON_UUID: [u8; 16] = *b"LoyaltyEdgeDemo!";

#[derive(Debug)]
struct Args {
    trace: PathBuf,
    serial: Option<PathBuf>,
    baud: u32,
    link: Option<PathBuf>,
    node_id: u64,
    board: String,
    report_ms: u64,
    heartbeat_ms: u64,
    forward_raw: bool,
    repeat: bool,
    exit_after_ms: Option<u64>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        trace: PathBuf::new(),
        serial: None,
        baud: 115_200,
        link: None,
        node_id: 1,
        board: "sim".into(),
        report_ms: 1000,
        heartbeat_ms: 5000,
        forward_raw: false,
        repeat: false,
        exit_after_ms: None,
    };
    let mut trace = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        let number = |v: String| v.parse::<u64>().map_err(|e| format!("{flag} {v:?}: {e}"));
        match flag.as_str() {
            "--trace" => trace = Some(PathBuf::from(value()?)),
            "--serial" => args.serial = Some(PathBuf::from(value()?)),
            "--baud" => args.baud = u32::try_from(number(value()?)?).map_err(|e| e.to_string())?,
            "--link" => args.link = Some(PathBuf::from(value()?)),
            "--node-id" => args.node_id = number(value()?)?,
            "--board" => args.board = value()?,
            "--report-ms" => args.report_ms = number(value()?)?,
            "--heartbeat-ms" => args.heartbeat_ms = number(value()?)?,
            "--exit-after-ms" => args.exit_after_ms = Some(number(value()?)?),
            "--forward-raw" => args.forward_raw = true,
            "--repeat" => args.repeat = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    args.trace = trace.ok_or_else(|| format!("--trace is required\n{USAGE}"))?;
    if args.serial.is_some() && args.link.is_some() {
        return Err("--link only applies to the pseudo-terminal, not --serial".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) if e == USAGE => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
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
