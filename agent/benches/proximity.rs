//! Proximity pipeline on one core: sightings per second through decode (raw advertisement
//! bytes) -> resolve (rotating id -> member, against a 1,000,000-member map) -> track, and the
//! rebuild of that map: time and memory.
//!
//! Run with `cargo bench -p loyalty-agent --bench proximity`. Targets (issue 4): at least
//! 1,000,000 sightings/s; rebuild for 1,000,000 members under 2 s and 200 MB.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use loyalty_agent::proximity::adverts::Decoder;
use loyalty_agent::proximity::resolver::{MemberId, ResolverMap};
use loyalty_agent::proximity::rotating_id::{rotating_id, ProximityKey};
use loyalty_agent::proximity::tracker::{
    Observation, SensorConfig, SensorId, SensorRole, Smoothing, Tracker, TrackerConfig, ZoneConfig,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MEMBERS: usize = 1_000_000;
const INTERVAL: u64 = 2_900_000;
/// Phones in the store at once (a crowded store has a few hundred).
const PRESENT: usize = 2_000;
/// Sightings replayed per run.
const SIGHTINGS: usize = 2_000_000;
/// Sightings per simulated second (a crowded store makes about 5,000): one tick per second.
const PER_SECOND: usize = 5_000;
/// Share of sightings that are not member phones (iBeacons, other companies' data).
const FOREIGN_EVERY: usize = 10;
const ZONES: usize = 6;

fn vm_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or("?".into(), |k| format!("{:.0} MiB", k as f64 / 1024.0))
}

fn tracker_config() -> TrackerConfig {
    let mut sensors = vec![
        SensorConfig {
            name: "door-in".into(),
            zone: "door".into(),
            role: SensorRole::Inside,
            rssi_at_1m: Some(-59.0),
            path_loss_exponent: 2.2,
        },
        SensorConfig {
            name: "door-out".into(),
            zone: "door".into(),
            role: SensorRole::Outside,
            rssi_at_1m: Some(-59.0),
            path_loss_exponent: 2.2,
        },
    ];
    let mut zones = vec![ZoneConfig {
        name: "door".into(),
        enter_distance_m: 2.0,
        exit_distance_m: 4.0,
        min_dwell: Duration::from_secs(5),
        exit_timeout: Duration::from_secs(15),
    }];
    for z in 1..ZONES {
        sensors.push(SensorConfig {
            name: format!("zone-{z}"),
            zone: format!("zone-{z}"),
            role: SensorRole::Zone,
            rssi_at_1m: None,
            path_loss_exponent: 2.5,
        });
        zones.push(ZoneConfig {
            name: format!("zone-{z}"),
            enter_distance_m: 2.0,
            exit_distance_m: 4.0,
            min_dwell: Duration::from_secs(30),
            exit_timeout: Duration::from_secs(20),
        });
    }
    TrackerConfig {
        sensors,
        zones,
        smoothing: Smoothing::default(),
        visit_timeout: Duration::from_secs(300),
    }
}

fn main() -> ExitCode {
    let mut ok = true;
    let mut rng = StdRng::seed_from_u64(4);
    println!("proximity bench: one core, {MEMBERS} members");
    println!("VmHWM at start: {}", mib(vm_kib("VmHWM:")));

    let members: Vec<(MemberId, ProximityKey)> = (0..MEMBERS)
        .map(|i| (MemberId::from(format!("M{i:07}")), ProximityKey(rng.gen())))
        .collect();
    let hwm_members = vm_kib("VmHWM:");
    println!(
        "VmHWM with the member table (ids + keys): {}",
        mib(hwm_members)
    );

    // == Rebuild ==
    let mut times = Vec::new();
    let mut map = None;
    for _ in 0..3 {
        drop(map.take());
        let t = Instant::now();
        let m = ResolverMap::build(&members, INTERVAL).expect("build");
        times.push(t.elapsed());
        map = Some(m);
    }
    let Some(map) = map else {
        return ExitCode::FAILURE;
    };
    times.sort();
    let hwm_built = vm_kib("VmHWM:");
    let map_mib = map.heap_bytes() as f64 / (1024.0 * 1024.0);
    println!(
        "rebuild, {} ids: best {:.0} ms, median {:.0} ms (target < 2000 ms)",
        map.len(),
        times[0].as_secs_f64() * 1e3,
        times[1].as_secs_f64() * 1e3
    );
    println!(
        "map heap {map_mib:.1} MiB ({:.1} B/member); process VmHWM {} (member table included), \
         rebuild peak over the table ~{} (target < 200 MB); conflicts {}",
        map.heap_bytes() as f64 / MEMBERS as f64,
        mib(hwm_built),
        mib(hwm_built.zip(hwm_members).map(|(a, b)| a.saturating_sub(b))),
        map.conflicts()
    );
    ok &= times[1] < Duration::from_secs(2);
    ok &= map_mib < 200.0;

    // == Pipeline ==
    let present: Vec<usize> = (0..PRESENT).map(|_| rng.gen_range(0..MEMBERS)).collect();
    let mut payloads: Vec<Vec<u8>> = present
        .iter()
        .map(|&m| {
            loyalty_firmware::token::encode_advertisement(rotating_id(&members[m].1, INTERVAL), -59)
                .to_vec()
        })
        .collect();
    // Foreign advertisers: an iBeacon and another fleet's token.
    let foreign_start = payloads.len();
    payloads.push(
        loyalty_firmware::ibeacon::encode(&loyalty_firmware::ibeacon::IBeacon {
            uuid: [7; 16],
            major: 1,
            minor: 2,
            measured_power: -59,
        })
        .to_vec(),
    );
    payloads.push(loyalty_firmware::token::encode_advertisement_with(0x1234, 5, -59).to_vec());

    let mut tracker: Tracker<MemberId> = tracker_config().build().expect("valid config");
    let sensors: Vec<SensorId> = ["door-in", "door-out"]
        .into_iter()
        .map(String::from)
        .chain((1..ZONES).map(|z| format!("zone-{z}")))
        .map(|n| tracker.sensor_id(&n).expect("sensor"))
        .collect();
    // Each phone stays near one sensor, at a distance that drifts: some enter, some exit.
    struct Input {
        payload: u32,
        sensor: SensorId,
        rssi: i8,
    }
    let home: Vec<usize> = (0..PRESENT)
        .map(|_| rng.gen_range(0..sensors.len()))
        .collect();
    let inputs: Vec<Input> = (0..SIGHTINGS)
        .map(|i| {
            if i % FOREIGN_EVERY == 0 {
                return Input {
                    payload: (foreign_start + i / FOREIGN_EVERY % 2) as u32,
                    sensor: sensors[i % sensors.len()],
                    rssi: -70,
                };
            }
            let p = rng.gen_range(0..PRESENT);
            Input {
                payload: p as u32,
                sensor: sensors[home[p]],
                rssi: rng.gen_range(-90..-50),
            }
        })
        .collect();

    let decoder = Decoder::default();
    let mut events = Vec::new();
    // Simulated time goes on across runs: the tracker never sees the clock go back.
    let span = Duration::from_secs((SIGHTINGS / PER_SECOND) as u64 + 1);
    let mut base = Duration::ZERO;
    let mut run = |tracker: &mut Tracker<MemberId>, events: &mut Vec<_>, stage: u8| {
        let mut resolved = 0usize;
        let t = Instant::now();
        for (i, input) in inputs.iter().enumerate() {
            let at = base + Duration::from_micros((i * 1_000_000 / PER_SECOND) as u64);
            if i % PER_SECOND == 0 && stage == 3 {
                tracker.tick(at, events);
                events.clear();
            }
            let Ok(advert) = decoder.decode_payload(&payloads[input.payload as usize]) else {
                continue;
            };
            let Some(id) = advert.token_id() else {
                continue;
            };
            if stage == 1 {
                black_box(id);
                continue;
            }
            let Some(member) = map.resolve(id, INTERVAL).member() else {
                continue;
            };
            resolved += 1;
            if stage == 2 {
                black_box(member);
                continue;
            }
            tracker.observe(
                Observation {
                    member: member.clone(),
                    sensor: input.sensor,
                    rssi: input.rssi,
                    tx_power: Some(advert.rssi_at_1m()),
                    check_in: false,
                    at,
                },
                events,
            );
        }
        let elapsed = t.elapsed();
        base += span;
        (elapsed, resolved)
    };
    for (stage, label) in [
        (1u8, "decode"),
        (2, "decode + resolve"),
        (3, "decode + resolve + track"),
    ] {
        // Warm up once (tracker state, caches), then measure.
        let _ = run(&mut tracker, &mut events, stage);
        let (elapsed, resolved) = run(&mut tracker, &mut events, stage);
        let rate = SIGHTINGS as f64 / elapsed.as_secs_f64();
        println!(
            "{label}: {SIGHTINGS} sightings in {:.0} ms = {:.2} M sightings/s ({:.0} ns each; {resolved} resolved)",
            elapsed.as_secs_f64() * 1e3,
            rate / 1e6,
            elapsed.as_secs_f64() * 1e9 / SIGHTINGS as f64
        );
        if stage == 3 {
            ok &= rate >= 1_000_000.0;
            println!(
                "tracked members {}, open visits {}, target >= 1.00 M sightings/s",
                tracker.tracked_members(),
                tracker.open_visits()
            );
        }
    }
    println!("VmHWM at end: {}", mib(vm_kib("VmHWM:")));
    if ok {
        println!("targets met");
        ExitCode::SUCCESS
    } else {
        println!("TARGET MISSED");
        ExitCode::FAILURE
    }
}
