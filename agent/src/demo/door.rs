//! The demo's front door: a trace synthesised for *now* (so the members' rotating ids resolve)
//! from the RF model, in which a member walks past outside and another lingers at the door edge.

use crate::proximity::trace::write_trace;
use crate::proximity::ProximityKey;
use anyhow::Context;
use loyalty_sim::rf_model::{Point, RfModel, TokenSource, Walker, Waypoint};
use std::path::Path;
use std::time::Duration;

pub const CARLA_KEY: &str = "c0ffee00c0ffee00c0ffee00c0ffee00";
pub const DAVE_KEY: &str = "da5eda5eda5eda5eda5eda5eda5eda5e";
pub const INTERVAL_SECS: u64 = 600;

/// The `[proximity]` part of the demo's agent.toml, replaying `trace`.
pub fn config_toml(trace: &Path) -> String {
    format!(
        r#"
[proximity]
interval_secs = {INTERVAL_SECS}
replay = "{trace}"

[[proximity.zones]]
name = "door"
enter_distance_m = 2.0
exit_distance_m = 4.0
min_dwell_secs = 3
exit_timeout_secs = 15

[[proximity.sensors]]
name = "door-in"
source = "replay"
zone = "door"
role = "inside"
rssi_at_1m = -59
path_loss_exponent = 2.2

[[proximity.sensors]]
name = "door-out"
source = "replay"
zone = "door"
role = "outside"
rssi_at_1m = -59
path_loss_exponent = 2.2

[[gifts]]
id = "welcome"
gift = "Free coffee"
trigger = "entered_store"
limit = "once_per_visit"
valid_for_minutes = 120
"#,
        trace = trace.display()
    )
}

/// Writes the door trace for a day starting at `unix_now`: dave walks by on the pavement,
/// carla (from 6 s) stands in the doorway for 15 s with the RSSI hovering around the threshold.
pub fn write_door_trace(path: &Path, unix_now: u64) -> anyhow::Result<usize> {
    let model = RfModel::shop_front(&[
        ("door-out", Point::new(0.0, -1.0)),
        ("door-in", Point::new(0.0, 2.0)),
    ]);
    let rotating = |key: &str| -> anyhow::Result<TokenSource> {
        let key = key.parse::<ProximityKey>().context("demo key")?;
        Ok(TokenSource::rotating(key, unix_now, INTERVAL_SECS))
    };
    let walkers = [
        Walker::shopper(
            rotating(DAVE_KEY)?,
            Duration::ZERO,
            vec![Waypoint::pass(-8.0, -2.5), Waypoint::pass(8.0, -2.5)],
        ),
        // After HQ is back (a few seconds into the day), so her phone hears of the gift live.
        Walker::shopper(
            rotating(CARLA_KEY)?,
            Duration::from_secs(6),
            vec![
                Waypoint::pass(-4.0, -2.0),
                Waypoint::pass(0.0, -2.0),
                Waypoint::stay(0.0, 0.2, Duration::from_secs(15)),
                Waypoint::pass(0.0, -2.0),
                Waypoint::pass(-6.0, -2.0),
            ],
        ),
    ];
    let records = model.synthesize(&walkers, 7);
    let file =
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    write_trace(&mut writer, &records).with_context(|| format!("writing {}", path.display()))?;
    std::io::Write::flush(&mut writer)?;
    Ok(records.len())
}
