//! From raw TOML to a [`Config`], collecting every problem with its position.

use super::locate::{line_col, span_of};
use super::raw::{RawCampaign, RawConfig, RawLane, RawProximity, RawScanner};
use super::{
    BluetoothSensor, CheckoutSettings, Config, HqConfig, LaneConfig, Problem, ProximityConfig,
    SensorConfig,
};
use crate::engine::{Multiplier, PointsCampaign, Rules, StoreTimeZone};
use crate::scan::{ScannerSettings, Terminator};
use crate::serial::PortSource;
use chrono::{DateTime, FixedOffset, Utc};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::de::DeTable;

/// Where a problem points: at the key itself (unknown key) or at its value (bad value).
enum At {
    Key,
    Value,
}

struct Collector {
    found: Vec<(String, At, String)>,
}

impl Collector {
    fn value(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.found.push((path.into(), At::Value, message.into()));
    }
}

pub fn parse(text: &str, path: &Path) -> Result<Config, Vec<Problem>> {
    let problem_at = |offset: usize, message: String| {
        let (line, column) = line_col(text, offset);
        Problem {
            path: path.to_owned(),
            line,
            column,
            message,
        }
    };
    let (document, syntax_errors) = DeTable::parse_recoverable(text);
    if !syntax_errors.is_empty() {
        return Err(syntax_errors
            .iter()
            .map(|e| {
                problem_at(
                    e.span().map_or(0, |s| s.start),
                    e.message().trim().to_owned(),
                )
            })
            .collect());
    }
    let root = document.get_ref().clone();
    let outcome = super::type_errors::deserialize::<RawConfig>(text, dotted);
    let base_dir = path.parent().unwrap_or(Path::new("."));
    let mut collector = Collector { found: Vec::new() };
    for key in outcome.unknown {
        let message = match super::suggest::suggestion(&key) {
            Some(meant) => format!("unknown key `{key}`; did you mean `{meant}`?"),
            None => format!("unknown key `{key}`"),
        };
        collector.found.push((key, At::Key, message));
    }
    let typed: Vec<Problem> = outcome
        .type_errors
        .iter()
        .map(|e| problem_at(e.offset, e.message.clone()))
        .collect();
    let Some(raw) = outcome.value else {
        return Err(typed);
    };
    if !typed.is_empty() {
        // A blanked key may now be "missing": it is reported once, as the wrong type it was.
        let reported_as_typed = |key: &str, message: &str| {
            outcome.type_errors.iter().any(|e| {
                let (parent, last) = e.key.rsplit_once('.').unwrap_or(("", &e.key));
                key == e.key
                    || message.contains(&format!("`{}`", e.key))
                    || (key == parent && message.contains(&format!("`{last}`")))
            })
        };
        let _ = build(raw, base_dir, &mut collector);
        let mut problems: Vec<Problem> = collector
            .found
            .into_iter()
            .filter(|(key, _, message)| !reported_as_typed(key, message))
            .map(|(key, at, message)| {
                let span = span_of(&root, &key, matches!(at, At::Key));
                problem_at(span.start, message)
            })
            .chain(typed)
            .collect();
        problems.sort_by_key(|p| (p.line, p.column));
        return Err(problems);
    }
    let config = build(raw, base_dir, &mut collector);
    if collector.found.is_empty() {
        if let Some(config) = config {
            return Ok(config);
        }
    }
    let mut problems: Vec<Problem> = collector
        .found
        .into_iter()
        .map(|(key, at, message)| {
            let span = span_of(&root, &key, matches!(at, At::Key));
            problem_at(span.start, message)
        })
        .collect();
    problems.sort_by_key(|p| (p.line, p.column));
    Err(problems)
}

fn build(raw: RawConfig, base_dir: &Path, c: &mut Collector) -> Option<Config> {
    let (store_id, data_dir, time_zone) = match &raw.store {
        None => {
            c.value("store", "missing [store] table with `id` and `data_dir`");
            (None, None, None)
        }
        Some(store) => {
            let id = match store.id.as_deref() {
                None => {
                    c.value("store", "missing `store.id`");
                    None
                }
                Some(id) if !is_identifier(id, 64) => {
                    c.value(
                        "store.id",
                        "store.id must be 1 to 64 characters of letters, digits, `-` or `_`",
                    );
                    None
                }
                Some(id) => Some(id.to_owned()),
            };
            let data_dir = match store.data_dir.as_deref() {
                None => {
                    c.value("store", "missing `store.data_dir` (where ledger.db lives)");
                    None
                }
                Some("") => {
                    c.value("store.data_dir", "store.data_dir must not be empty");
                    None
                }
                Some(dir) => Some(base_dir.join(dir)),
            };
            let zone = match (store.time_zone.as_deref(), store.utc_offset.as_deref()) {
                (Some(_), Some(_)) => {
                    c.value(
                        "store.utc_offset",
                        "give `store.time_zone` or the deprecated `store.utc_offset`, not both",
                    );
                    None
                }
                (None, None) => Some(StoreTimeZone::UTC),
                (Some(name), None) => match StoreTimeZone::named(name) {
                    Ok(zone) => Some(zone),
                    Err(e) => {
                        c.value("store.time_zone", format!("store.time_zone: {e}"));
                        None
                    }
                },
                (None, Some(text)) => match parse_offset(text) {
                    Some(o) => Some(StoreTimeZone::Fixed(o)),
                    None => {
                        c.value(
                            "store.utc_offset",
                            format!(
                                "`{text}` is not a UTC offset like \"+01:00\" (deprecated: name \
                                 the zone instead, `time_zone = \"Europe/Amsterdam\"`)"
                            ),
                        );
                        None
                    }
                },
            };
            (id, data_dir, zone)
        }
    };

    let api_listen = match raw.api.as_ref().and_then(|a| a.listen.as_deref()) {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 7400))),
        Some(text) => match text.parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                c.value(
                    "api.listen",
                    format!("`{text}` is not an address like \"127.0.0.1:7400\""),
                );
                None
            }
        },
    };

    let hq = raw.hq.as_ref().and_then(|hq| {
        let url = match hq.url.as_deref() {
            None => {
                c.value("hq", "missing `hq.url`");
                None
            }
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                Some(u.trim_end_matches('/').to_owned())
            }
            Some(u) => {
                c.value("hq.url", format!("`{u}` is not an http:// or https:// URL"));
                None
            }
        };
        let token = match (&hq.token, &hq.token_file) {
            (Some(_), Some(_)) => {
                c.value(
                    "hq.token_file",
                    "give `hq.token` or `hq.token_file`, not both",
                );
                None
            }
            (None, None) => {
                c.value("hq", "missing `hq.token` (or `hq.token_file`)");
                None
            }
            (Some(t), None) if t.trim().is_empty() => {
                c.value("hq.token", "hq.token must not be empty");
                None
            }
            (Some(t), None) => Some(t.clone()),
            (None, Some(file)) => match read_token_file(&base_dir.join(file)) {
                Ok(t) if !t.trim().is_empty() => Some(t.trim().to_owned()),
                Ok(_) => {
                    c.value("hq.token_file", format!("token file `{file}` is empty"));
                    None
                }
                Err(e) => {
                    c.value(
                        "hq.token_file",
                        format!("cannot read token file `{file}`: {e}"),
                    );
                    None
                }
            },
        };
        let offline_after = match hq.offline_after_secs {
            Some(0) => {
                c.value(
                    "hq.offline_after_secs",
                    "`hq.offline_after_secs` must be at least 1 second",
                );
                None
            }
            Some(s) => Some(Duration::from_secs(s)),
            None => Some(crate::sync::OFFLINE_AFTER),
        };
        let push_batch = match hq.push_batch {
            Some(n) if (1..=100_000).contains(&n) => Some(n),
            Some(_) => {
                c.value("hq.push_batch", "`hq.push_batch` is 1 to 100000 events");
                None
            }
            None => Some(crate::sync::PUSH_BATCH),
        };
        let pull_wait = match hq.pull_wait_secs {
            Some(s) if s <= 300 => Some(Duration::from_secs(s)),
            Some(_) => {
                c.value(
                    "hq.pull_wait_secs",
                    "`hq.pull_wait_secs` is 0 to 300 seconds",
                );
                None
            }
            None => Some(crate::sync::PULL_WAIT),
        };
        let ca_file = match &hq.ca_file {
            None => Some(None),
            Some(file) => {
                let path = base_dir.join(file);
                match crate::sync::client::read_ca_file(&path) {
                    Ok(_) => Some(Some(path)),
                    Err(e) => {
                        c.value("hq.ca_file", format!("`hq.ca_file`: {e}"));
                        None
                    }
                }
            }
        };
        Some(HqConfig {
            url: url?,
            token: token?,
            offline_after: offline_after?,
            push_batch: push_batch?,
            pull_wait: pull_wait?,
            ca_file: ca_file?,
        })
    });

    let lanes = build_lanes(&raw.lanes, c);
    let checkout = build_checkout(&raw, c);
    let (sensors, proximity) = raw
        .proximity
        .as_ref()
        .map(|p| build_proximity(p, c))
        .unwrap_or_default();
    let gifts = build_gifts(&raw.gifts, proximity.as_ref(), c);
    let rules = build_rules(&raw, time_zone.unwrap_or_default(), c).map(|mut r| {
        r.gifts = gifts;
        r
    });

    Some(Config {
        store_id: store_id?,
        data_dir: data_dir?,
        api_listen: api_listen?,
        hq,
        lanes,
        checkout,
        rules: rules?,
        sensors,
        proximity,
    })
}

fn build_proximity(
    raw: &RawProximity,
    c: &mut Collector,
) -> (Vec<SensorConfig>, Option<ProximityConfig>) {
    use crate::proximity::tracker::{
        SensorConfig as TrackedSensor, SensorRole, Smoothing, TrackerConfig, ZoneConfig,
    };
    let mut serial = Vec::new();
    let mut bluetooth = Vec::new();
    let mut tracked = Vec::new();
    let mut names = HashSet::new();
    for (i, sensor) in raw.sensors.iter().enumerate() {
        let here = format!("proximity.sensors.{i}");
        let name = match sensor.name.as_deref() {
            Some(n) if is_identifier(n, 32) => n.to_owned(),
            Some(_) => {
                c.value(
                    format!("{here}.name"),
                    "a sensor name is 1 to 32 letters, digits, `-` or `_`",
                );
                continue;
            }
            None => {
                c.value(&here, "a sensor needs a `name` (e.g. \"door-inside\")");
                continue;
            }
        };
        if !names.insert(name.clone()) {
            c.value(
                format!("{here}.name"),
                format!("sensor `{name}` is defined twice"),
            );
        }
        match sensor.source.as_deref().unwrap_or("serial") {
            "serial" => {
                if let Some(source) = port_source(
                    sensor.port.as_deref(),
                    sensor.usb.as_deref(),
                    sensor.serial.clone(),
                    &here,
                    c,
                ) {
                    let baud = sensor.baud.unwrap_or(115_200);
                    check_baud(baud, &here, c);
                    serial.push(SensorConfig {
                        name: name.clone(),
                        source,
                        baud,
                    });
                }
            }
            other @ ("bluetooth" | "replay") => {
                if sensor.port.is_some() || sensor.usb.is_some() || sensor.baud.is_some() {
                    c.value(
                        &here,
                        format!(
                            "a `{other}` sensor has no serial port: drop `port`, `usb` and `baud`"
                        ),
                    );
                }
                if other == "bluetooth" {
                    bluetooth.push(BluetoothSensor {
                        name: name.clone(),
                        adapter: sensor.adapter.clone(),
                    });
                }
            }
            other => c.value(
                format!("{here}.source"),
                format!("`source` is `{other}`; expected `serial`, `bluetooth` or `replay`"),
            ),
        }
        if sensor.adapter.is_some() && sensor.source.as_deref() != Some("bluetooth") {
            c.value(
                format!("{here}.adapter"),
                "`adapter` goes with `source = \"bluetooth\"`",
            );
        }
        let role = match sensor.role.as_deref().unwrap_or("zone") {
            "zone" => SensorRole::Zone,
            "inside" => SensorRole::Inside,
            "outside" => SensorRole::Outside,
            other => {
                c.value(
                    format!("{here}.role"),
                    format!("`role` is `{other}`; expected `zone`, `inside` or `outside`"),
                );
                SensorRole::Zone
            }
        };
        match &sensor.zone {
            Some(zone) => tracked.push(TrackedSensor {
                name,
                zone: zone.clone(),
                role,
                rssi_at_1m: sensor.rssi_at_1m,
                path_loss_exponent: sensor.path_loss_exponent.unwrap_or(2.5),
            }),
            None => c.value(
                &here,
                "a sensor needs the `zone` it watches (one of `[[proximity.zones]]`)",
            ),
        }
    }
    let mut zones = Vec::new();
    for (i, zone) in raw.zones.iter().enumerate() {
        let here = format!("proximity.zones.{i}");
        let Some(name) = zone.name.clone() else {
            c.value(&here, "a zone needs a `name` (e.g. \"door\", \"coffee\")");
            continue;
        };
        zones.push(ZoneConfig {
            name,
            enter_distance_m: zone.enter_distance_m.unwrap_or(2.0),
            exit_distance_m: zone.exit_distance_m.unwrap_or(4.0),
            min_dwell: Duration::from_secs(zone.min_dwell_secs.unwrap_or(30)),
            exit_timeout: Duration::from_secs(zone.exit_timeout_secs.unwrap_or(20)),
        });
    }
    let interval_secs = raw.interval_secs.unwrap_or(600);
    if !(60..=86_400).contains(&interval_secs) {
        c.value(
            "proximity.interval_secs",
            "`interval_secs` is 60 to 86400 (the members' apps rotate ids at the same interval)",
        );
    }
    let tracker = TrackerConfig {
        sensors: tracked,
        zones,
        smoothing: Smoothing::default(),
        visit_timeout: Duration::from_secs(raw.visit_timeout_secs.unwrap_or(120)),
    };
    if tracker.sensors.is_empty() && tracker.zones.is_empty() {
        return (serial, None);
    }
    if let Err(e) = tracker.build::<String>() {
        for problem in e.0 {
            c.value("proximity", problem);
        }
    }
    (
        serial,
        Some(ProximityConfig {
            interval_secs,
            replay: raw.replay.as_ref().map(PathBuf::from),
            bluetooth,
            tracker,
        }),
    )
}

fn build_gifts(
    raw: &[crate::engine::gift_spec::GiftCampaignSpec],
    proximity: Option<&ProximityConfig>,
    c: &mut Collector,
) -> Vec<crate::engine::gifts::GiftCampaign> {
    use crate::engine::gifts::GiftTrigger;
    let mut campaigns = Vec::new();
    let mut ids = HashSet::new();
    for (i, spec) in raw.iter().enumerate() {
        let here = format!("gifts.{i}");
        let Some(id) = spec.id.clone().filter(|id| is_identifier(id, 64)) else {
            c.value(
                format!("{here}.id"),
                "a gift campaign needs an `id` of 1 to 64 letters, digits, `-` or `_`",
            );
            continue;
        };
        if !ids.insert(id.clone()) {
            c.value(
                format!("{here}.id"),
                format!("gift campaign `{id}` is defined twice"),
            );
        }
        match spec.clone().validate(id, 1) {
            Ok(campaign) => {
                if let GiftTrigger::Dwelled { zone, seconds } = &campaign.trigger {
                    let found =
                        proximity.and_then(|p| p.tracker.zones.iter().find(|z| &z.name == zone));
                    match found {
                        None => c.value(
                            format!("{here}.zone"),
                            format!("zone `{zone}` is not one of `[[proximity.zones]]`"),
                        ),
                        // The tracker reports dwelling once per visit, at the zone's minimum
                        // dwell: a campaign asking for longer would never see it.
                        Some(z) if z.min_dwell.as_secs() < *seconds => c.value(
                            format!("{here}.dwell_seconds"),
                            format!(
                                "dwell_seconds is {seconds} but zone `{zone}` reports dwelling at min_dwell_secs = {}: set the zone's min_dwell_secs to at least {seconds}",
                                z.min_dwell.as_secs()
                            ),
                        ),
                        Some(_) => {}
                    }
                }
                campaigns.push(campaign);
            }
            Err(problems) => {
                for p in problems {
                    c.value(&here, p);
                }
            }
        }
    }
    campaigns
}

/// A serial device named by path or by USB id (+ serial number), as scanners and sensors are.
fn port_source(
    port: Option<&str>,
    usb: Option<&str>,
    serial: Option<String>,
    here: &str,
    c: &mut Collector,
) -> Option<PortSource> {
    match (port, usb) {
        (Some(_), Some(_)) => {
            c.value(here, "give a `port` or a `usb` id, not both");
            None
        }
        (None, None) => {
            c.value(
                here,
                "a serial device needs `port = \"/dev/...\"` or `usb = \"vid:pid\"`",
            );
            None
        }
        (Some(port), None) => {
            if serial.is_some() {
                c.value(
                    format!("{here}.serial"),
                    "`serial` goes with `usb`, not `port`",
                );
            }
            Some(PortSource::Path(PathBuf::from(port)))
        }
        (None, Some(usb)) => match PortSource::parse_usb(usb, serial) {
            Ok(s) => Some(s),
            Err(e) => {
                c.value(format!("{here}.usb"), format!("{e}"));
                None
            }
        },
    }
}

fn check_baud(baud: u32, here: &str, c: &mut Collector) {
    if !matches!(
        baud,
        1200 | 2400 | 4800 | 9600 | 19200 | 38400 | 57600 | 115200 | 230400 | 460800 | 921600
    ) {
        c.value(
            format!("{here}.baud"),
            format!("{baud} is not a standard baud rate"),
        );
    }
}

fn build_lanes(raw: &[RawLane], c: &mut Collector) -> Vec<LaneConfig> {
    let mut lanes = Vec::new();
    let mut ids = HashSet::new();
    let mut ports: BTreeMap<String, usize> = BTreeMap::new();
    for (i, lane) in raw.iter().enumerate() {
        let here = format!("lanes.{i}");
        let id = match lane.id.as_deref() {
            None => {
                c.value(&here, "a lane needs an `id`");
                continue;
            }
            Some(id) if !is_identifier(id, 32) => {
                c.value(
                    format!("{here}.id"),
                    "a lane id is 1 to 32 letters, digits, `-` or `_` (it appears in URLs)",
                );
                continue;
            }
            Some(id) => id.to_owned(),
        };
        if !ids.insert(id.clone()) {
            c.value(
                format!("{here}.id"),
                format!("lane `{id}` is defined twice"),
            );
        }
        let scanner = lane
            .scanner
            .as_ref()
            .and_then(|s| build_scanner(s, &format!("{here}.scanner"), c));
        if let Some(s) = &scanner {
            let key = format!("{:?}", s.source);
            if let Some(other) = ports.insert(key, i) {
                c.value(
                    format!("{here}.scanner"),
                    format!(
                        "this scanner is already lane {}'s",
                        raw[other].id.as_deref().unwrap_or("?")
                    ),
                );
            }
        }
        lanes.push(LaneConfig { id, scanner });
    }
    lanes
}

fn build_scanner(raw: &RawScanner, here: &str, c: &mut Collector) -> Option<ScannerSettings> {
    let defaults = ScannerSettings::default();
    let source = port_source(
        raw.port.as_deref(),
        raw.usb.as_deref(),
        raw.serial.clone(),
        here,
        c,
    );
    let baud = raw.baud.unwrap_or(defaults.baud);
    check_baud(baud, here, c);
    let terminator = match raw.terminator.as_deref() {
        None | Some("line") => Terminator::Line,
        Some("tab") => Terminator::Tab,
        Some("none") => Terminator::None,
        Some(other) => {
            c.value(
                format!("{here}.terminator"),
                format!("terminator `{other}` is not one of \"line\" (CR, LF or CR LF), \"tab\", \"none\""),
            );
            Terminator::Line
        }
    };
    let inter_char_timeout = raw
        .inter_char_timeout_ms
        .map_or(defaults.inter_char_timeout, Duration::from_millis);
    if !(Duration::from_millis(10)..=Duration::from_secs(5)).contains(&inter_char_timeout) {
        c.value(
            format!("{here}.inter_char_timeout_ms"),
            "inter_char_timeout_ms must be between 10 and 5000",
        );
    }
    let debounce = raw
        .debounce_ms
        .map_or(defaults.debounce, Duration::from_millis);
    if debounce > Duration::from_secs(60) {
        c.value(
            format!("{here}.debounce_ms"),
            "debounce_ms must be at most 60000",
        );
    }
    Some(ScannerSettings {
        source: source?,
        baud,
        terminator,
        prefix: raw.prefix.clone().unwrap_or_default(),
        suffix: raw.suffix.clone().unwrap_or_default(),
        inter_char_timeout,
        debounce,
        max_len: defaults.max_len,
    })
}

fn build_checkout(raw: &RawConfig, c: &mut Collector) -> CheckoutSettings {
    let mut settings = CheckoutSettings::default();
    if let Some(checkout) = &raw.checkout {
        if let Some(secs) = checkout.session_timeout_secs {
            if !(5..=3600).contains(&secs) {
                c.value(
                    "checkout.session_timeout_secs",
                    "session_timeout_secs must be between 5 and 3600",
                );
            }
            settings.session_timeout = Duration::from_secs(secs);
        }
        if let Some(secs) = checkout.qr_max_age_secs {
            if !(10..=86_400).contains(&secs) {
                c.value(
                    "checkout.qr_max_age_secs",
                    "qr_max_age_secs must be between 10 and 86400",
                );
            }
            settings.qr_max_age = Duration::from_secs(secs);
        }
    }
    settings
}

fn build_rules(raw: &RawConfig, time_zone: StoreTimeZone, c: &mut Collector) -> Option<Rules> {
    let mut rules = Rules {
        time_zone,
        ..Rules::default()
    };
    let Some(points) = &raw.points else {
        return Some(rules);
    };
    if let Some(per_euro) = points.per_euro {
        if per_euro > 1000 {
            c.value("points.per_euro", "per_euro must be at most 1000");
        }
        rules.per_euro = per_euro;
    }
    if let Some(version) = &points.version {
        if version.is_empty() || version.contains(';') {
            c.value(
                "points.version",
                "version must be non-empty text without `;`",
            );
        }
        rules.version = version.clone();
    }
    for (i, category) in points.exclude_categories.iter().enumerate() {
        if category.is_empty()
            || category.chars().count() > 64
            || category.chars().any(char::is_control)
        {
            c.value(
                format!("points.exclude_categories.{i}"),
                "a category is 1 to 64 printable characters, as the POS sends it",
            );
        }
    }
    rules.excluded_categories = points.exclude_categories.clone();
    for (tier, factor) in &points.tiers {
        match Multiplier::from_factor(*factor) {
            Some(m) => {
                rules.tier_multipliers.insert(tier.clone(), m);
            }
            None => c.value(
                format!("points.tiers.{tier}"),
                "a tier multiplier is a number from 0 to 100",
            ),
        }
    }
    let mut seen = HashSet::new();
    for (i, raw) in points.campaigns.iter().enumerate() {
        let here = format!("points.campaigns.{i}");
        if let Some(campaign) = build_campaign(raw, &here, c) {
            if !seen.insert(campaign.id.clone()) {
                c.value(
                    format!("{here}.id"),
                    format!("campaign `{}` is defined twice", campaign.id),
                );
            }
            rules.campaigns.push(campaign);
        }
    }
    Some(rules)
}

fn build_campaign(raw: &RawCampaign, here: &str, c: &mut Collector) -> Option<PointsCampaign> {
    let mut problems = Vec::new();
    let campaign = loyalty_rules::campaign::build_points_campaign(raw, here, &mut problems);
    for (path, message) in problems {
        c.value(path, message);
    }
    campaign
}

/// The most a token file may hold: a token is a line, and a path like `/dev/zero` must not keep
/// `check-config` (or the agent's start) reading forever.
const TOKEN_FILE_MAX: u64 = 4096;

fn read_token_file(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(TOKEN_FILE_MAX + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > TOKEN_FILE_MAX {
        return Err(std::io::Error::other(format!(
            "it holds more than {TOKEN_FILE_MAX} bytes: not a token file"
        )));
    }
    Ok(text)
}

/// `lanes.0.scanner.port`: serde_ignored's path without its `?` marks for options and newtypes.
fn dotted(path: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path;
    match path {
        Path::Root => String::new(),
        Path::Seq { parent, index } => join(dotted(parent), &index.to_string()),
        Path::Map { parent, key } => join(dotted(parent), key),
        Path::Some { parent }
        | Path::NewtypeStruct { parent }
        | Path::NewtypeVariant { parent } => dotted(parent),
    }
}

fn join(parent: String, segment: &str) -> String {
    if parent.is_empty() {
        segment.to_owned()
    } else {
        format!("{parent}.{segment}")
    }
}

fn parse_offset(text: &str) -> Option<FixedOffset> {
    if text == "Z" || text == "UTC" {
        return Some(chrono::Offset::fix(&Utc));
    }
    let dt = DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{text}")).ok()?;
    Some(*dt.offset())
}

pub use loyalty_rules::is_identifier;

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        match parse(text, Path::new("agent.toml")) {
            Ok(_) => vec![],
            Err(p) => p.iter().map(ToString::to_string).collect(),
        }
    }

    /// Found by fuzzing: a token file that never ends must not keep the check reading forever.
    #[test]
    fn an_endless_token_file_is_refused() {
        let text = GOOD.replace("token = \"store-042-secret\"", "token_file = \"/dev/zero\"");
        assert_ne!(text, GOOD);
        let found = problems(&text);
        assert!(
            found
                .iter()
                .any(|p| p.contains("`/dev/zero`") && p.contains("not a token file")),
            "{found:?}"
        );
    }

    const GOOD: &str = r#"
[store]
id = "store-042"
data_dir = "/var/lib/loyalty-agent"

[api]
listen = "127.0.0.1:7400"

[hq]
url = "http://127.0.0.1:7500"
token = "store-042-secret"

[[lanes]]
id = "1"
scanner = { port = "/dev/ttyACM0", baud = 9600 }

[[lanes]]
id = "2"
scanner = { usb = "0c2e:0b61", serial = "A123" }

[points]
per_euro = 1
tiers = { gold = 1.5 }

[[points.campaigns]]
id = "double-monday"
multiplier = 2.0
weekdays = ["mon"]
hours = "17:00-20:00"
"#;

    #[test]
    fn contract_example_is_valid() {
        let config = parse(GOOD, Path::new("agent.toml")).unwrap_or_else(|p| {
            panic!(
                "{}",
                p.iter()
                    .map(|x| x.to_string())
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        assert_eq!(config.store_id, "store-042");
        assert_eq!(config.lanes.len(), 2);
        assert_eq!(config.rules.campaigns.len(), 1);
        assert_eq!(
            config.rules.tier_multipliers.get("gold"),
            Some(&Multiplier(1500))
        );
        assert_eq!(
            config.hq.as_ref().map(|h| h.token.clone()),
            Some("store-042-secret".to_string())
        );
        assert_eq!(
            config.hq.map(|h| h.offline_after),
            Some(crate::sync::OFFLINE_AFTER)
        );
    }

    #[test]
    fn hq_offline_after_secs_is_read_and_zero_is_refused() {
        let with = |v: &str| {
            GOOD.replace(
                "token = \"store-042-secret\"",
                &format!("token = \"store-042-secret\"\noffline_after_secs = {v}"),
            )
        };
        let config = parse(&with("5"), Path::new("agent.toml")).expect("valid");
        assert_eq!(
            config.hq.map(|h| h.offline_after),
            Some(Duration::from_secs(5))
        );
        let p = problems(&with("0"));
        assert!(
            p.len() == 1 && p[0].contains("12:22: `hq.offline_after_secs` must be at least 1"),
            "{p:?}"
        );
    }

    #[test]
    fn hq_ca_file_must_hold_pem_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let ca = loyalty_sim::test_ca::TestCa::write(dir.path(), &["localhost"]).unwrap();
        let with = |file: &Path| {
            GOOD.replace(
                "token = \"store-042-secret\"",
                &format!(
                    "token = \"store-042-secret\"\nca_file = {:?}",
                    file.display().to_string()
                ),
            )
        };
        let config = parse(&with(&ca.ca), Path::new("agent.toml")).expect("valid");
        assert_eq!(config.hq.and_then(|h| h.ca_file), Some(ca.ca.clone()));

        let missing = dir.path().join("nowhere.pem");
        let p = problems(&with(&missing));
        assert!(
            p.len() == 1 && p[0].contains("hq.ca_file") && p[0].contains("nowhere.pem"),
            "{p:?}"
        );
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        let p = problems(&with(&garbage));
        assert!(p.len() == 1 && p[0].contains("no PEM certificate"), "{p:?}");
    }

    #[test]
    fn hq_pull_wait_secs_defaults_to_25_and_is_bounded() {
        let with = |v: &str| {
            GOOD.replace(
                "token = \"store-042-secret\"",
                &format!("token = \"store-042-secret\"\npull_wait_secs = {v}"),
            )
        };
        let default = parse(GOOD, Path::new("agent.toml")).expect("valid");
        assert_eq!(
            default.hq.map(|h| h.pull_wait),
            Some(Duration::from_secs(25))
        );
        let off = parse(&with("0"), Path::new("agent.toml")).expect("valid");
        assert_eq!(off.hq.map(|h| h.pull_wait), Some(Duration::ZERO));
        let p = problems(&with("301"));
        assert!(
            p.len() == 1 && p[0].contains("`hq.pull_wait_secs` is 0 to 300 seconds"),
            "{p:?}"
        );
    }

    #[test]
    fn every_unknown_key_and_bad_value_is_reported_with_its_position() {
        let text = "[store]\nid = \"s1\"\ndata_dir = \"/tmp\"\ncolour = \"red\"\n\n[api]\nlisten = \"nowhere\"\n\n[[lanes]]\nid = \"1\"\nscanner = { port = \"/dev/x\", baud = 1234, parity = \"odd\" }\n";
        assert_eq!(
            problems(text),
            vec![
                "agent.toml:4:1: unknown key `store.colour`".to_string(),
                "agent.toml:7:10: `nowhere` is not an address like \"127.0.0.1:7400\"".to_string(),
                "agent.toml:11:37: 1234 is not a standard baud rate".to_string(),
                "agent.toml:11:43: unknown key `lanes.0.scanner.parity`".to_string(),
            ]
        );
    }

    #[test]
    fn missing_store_is_reported_not_defaulted() {
        let p = problems("[api]\nlisten = \"127.0.0.1:1\"\n");
        assert_eq!(
            p,
            vec!["agent.toml:1:1: missing [store] table with `id` and `data_dir`".to_string()]
        );
    }

    #[test]
    fn syntax_error_has_position() {
        let p = problems("[store]\nid = \"s1\ndata_dir = 3\n");
        assert!(!p.is_empty());
        assert!(p[0].starts_with("agent.toml:2:"), "{p:?}");
    }

    #[test]
    fn wrong_type_has_position() {
        let p = problems("[store]\nid = 42\ndata_dir = \"/tmp\"\n");
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("agent.toml:2:6: "), "{p:?}");
    }

    #[test]
    fn duplicate_lane_and_shared_scanner_are_errors() {
        let text = "[store]\nid = \"s\"\ndata_dir = \"d\"\n[[lanes]]\nid = \"1\"\nscanner = { port = \"/dev/a\" }\n[[lanes]]\nid = \"1\"\nscanner = { port = \"/dev/a\" }\n";
        let p = problems(text);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("lane `1` is defined twice"));
        assert!(p[1].contains("already lane 1's"));
    }

    #[test]
    fn proximity_and_gift_problems_are_all_reported() {
        let text = r#"
[store]
id = "s"
data_dir = "d"

[proximity]

[[proximity.zones]]
name = "coffee"
min_dwell_secs = 30
enter_distance_m = 3.0
exit_distance_m = 2.0

[[proximity.sensors]]
name = "c1"
source = "replay"
zone = "coffee"
role = "sideways"

[[proximity.sensors]]
name = "c2"
source = "bluetooth"
port = "/dev/ttyACM0"
zone = "tea"

[[gifts]]
id = "pastry"
gift = "Pastry"
trigger = "dwelled"
zone = "coffee"
dwell_seconds = 60
limit = "once_per_day"
valid_for_minutes = 30

[[gifts]]
id = "nowhere"
gift = "Nothing"
trigger = "dwelled"
zone = "bakery"
dwell_seconds = 10
limit = "once_per_day"
valid_for_minutes = 30
"#;
        let p = problems(text);
        let has = |needle: &str| p.iter().any(|l| l.contains(needle));
        assert!(has("`role` is `sideways`"), "{p:?}");
        assert!(has("a `bluetooth` sensor has no serial port"), "{p:?}");
        assert!(has("tea"), "the unknown zone of sensor c2: {p:?}");
        assert!(has("exit"), "exit nearer than enter: {p:?}");
        assert!(has("min_dwell_secs to at least 60"), "{p:?}");
        assert!(has("zone `bakery` is not one of"), "{p:?}");
    }

    fn with_store_keys(keys: &str) -> String {
        let text = GOOD.replace(
            "data_dir = \"/var/lib/loyalty-agent\"\n",
            &format!("data_dir = \"/var/lib/loyalty-agent\"\n{keys}\n"),
        );
        assert_ne!(text, GOOD);
        text
    }

    #[test]
    fn store_time_zone_makes_campaign_hours_follow_daylight_saving_time() {
        let text = with_store_keys("time_zone = \"Europe/Amsterdam\"");
        let config = parse(&text, Path::new("agent.toml")).expect("valid");
        assert_eq!(config.rules.time_zone.to_string(), "Europe/Amsterdam");
        // double-monday, 17:00-20:00: local 17:30 on a winter and a summer Monday.
        let points = |utc: &str| {
            let at = DateTime::parse_from_rfc3339(utc)
                .unwrap()
                .with_timezone(&Utc);
            crate::engine::earn(&config.rules, None, 1000, at).points
        };
        assert_eq!(points("2027-01-11T16:30:00Z"), 20, "17:30 CET");
        assert_eq!(points("2027-06-14T15:30:00Z"), 20, "17:30 CEST");
        assert_eq!(points("2027-06-14T18:30:00Z"), 10, "20:30 CEST");
        // Without a zone the store keeps UTC, as before.
        let utc = parse(GOOD, Path::new("agent.toml")).expect("valid");
        assert_eq!(utc.rules.time_zone, StoreTimeZone::UTC);
    }

    #[test]
    fn a_wrong_time_zone_is_located_and_says_what_to_write() {
        assert_eq!(
            problems(&with_store_keys("time_zone = \"Europe/Amsterdm\"")),
            vec![
                "agent.toml:5:13: store.time_zone: `Europe/Amsterdm` is not an IANA time zone \
                 name: write one like \"Europe/Amsterdam\" (`timedatectl list-timezones` lists \
                 them)"
                    .to_string()
            ]
        );
        assert_eq!(
            problems(&with_store_keys("time_zone = \"+02:00\"")),
            vec![
                "agent.toml:5:13: store.time_zone: `+02:00` is a UTC offset, not a time zone: \
                 write the zone's name, like \"Europe/Amsterdam\", so that campaign hours \
                 follow daylight saving time"
                    .to_string()
            ]
        );
        let p = problems(&with_store_keys("time_zone = \"europe/amsterdam\""));
        assert!(
            p.len() == 1 && p[0].ends_with("write \"Europe/Amsterdam\""),
            "{p:?}"
        );
    }

    #[test]
    fn the_deprecated_utc_offset_still_loads_but_not_beside_time_zone() {
        let config = parse(
            &with_store_keys("utc_offset = \"+01:00\""),
            Path::new("agent.toml"),
        )
        .expect("an existing config still loads");
        assert_eq!(
            config.rules.time_zone,
            StoreTimeZone::Fixed(FixedOffset::east_opt(3600).unwrap())
        );
        assert_eq!(
            problems(&with_store_keys(
                "time_zone = \"Europe/Amsterdam\"\nutc_offset = \"+01:00\""
            )),
            vec![
                "agent.toml:6:14: give `store.time_zone` or the deprecated `store.utc_offset`, \
                 not both"
                    .to_string()
            ]
        );
        let p = problems(&with_store_keys("utc_offset = \"CET\""));
        assert!(
            p.len() == 1 && p[0].contains("`CET` is not a UTC offset like \"+01:00\""),
            "{p:?}"
        );
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/agent.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(problems(&text), Vec::<String>::new());
    }
}
