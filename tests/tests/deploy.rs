//! Deployment artefacts, checked with the tools a store box uses: the systemd unit with
//! `systemd-analyze`, the udev rules by parsing and evaluating them, the scanner profiles' lane
//! snippets with `loyalty-agent check-config`, the package's preinst against a real ledger, and
//! the .deb (built with cargo-deb, as `scripts/package.sh` does) with `dpkg-deb`.
//!
//! `systemd-analyze`, `dpkg-deb`, cargo-deb and lintian come from `scripts/setup.sh`; a test
//! whose tool is missing fails and names it. The .deb is built by `scripts/package.sh`, as for a
//! store box, and must pass lintian with no error and no warning but the one overridden (and
//! justified) in `scripts/deb/lintian-overrides`.

use loyalty_e2e::{agent_binary, Store};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const UNIT_EXEC: &str = "/usr/bin/loyalty-agent";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("reading {rel}: {e}"))
}

fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (scripts/setup.sh installs it)"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `key=value` lines of a unit file, every value of a repeated key kept in order.
fn unit_settings(unit: &str) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in unit.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with('[') {
            continue;
        }
        let (k, v) = line.split_once('=').expect("unit line is key=value");
        map.entry(k.to_string()).or_default().push(v.to_string());
    }
    map
}

/// The unit as shipped, but starting the freshly built binary: `systemd-analyze verify` checks
/// that ExecStart's file exists, and this machine has no /usr/bin/loyalty-agent.
fn unit_for_verify(dir: &Path, unit: &str) -> PathBuf {
    let bin = agent_binary();
    assert!(unit.contains(&format!("ExecStart={UNIT_EXEC} ")));
    let path = dir.join("loyalty-agent.service");
    std::fs::write(
        &path,
        unit.replace(
            &format!("ExecStart={UNIT_EXEC} "),
            &format!("ExecStart={} ", bin.display()),
        ),
    )
    .expect("writing unit copy");
    path
}

/// Passes only when systemd-analyze exits 0 *and* says nothing: it exits 0 on settings it
/// "ignores" (a misspelt value), which would silently drop hardening.
fn verify(path: &Path) -> Result<(), String> {
    // The unit's Documentation= names man:loyalty-agent(1), which verify looks up: the page
    // the package installs, generated here as scripts/package.sh does.
    static MAN: OnceLock<tempfile::TempDir> = OnceLock::new();
    let man = MAN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("man1")).unwrap();
        let page = run(Command::new(agent_binary()).arg("man"));
        assert!(page.status.success());
        std::fs::write(dir.path().join("man1/loyalty-agent.1"), page.stdout).unwrap();
        dir
    });
    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(path)
        .env("MANPATH", man.path()));
    let stderr = text(&out.stderr);
    if out.status.success() && stderr.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("{}\n{stderr}{}", out.status, text(&out.stdout)))
    }
}

#[test]
fn systemd_unit_passes_systemd_analyze_verify() {
    let unit = read("hardware/systemd/loyalty-agent.service");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = unit_for_verify(dir.path(), &unit);
    if let Err(e) = verify(&path) {
        panic!("systemd-analyze verify rejected the unit:\n{e}");
    }

    // The check above can fail: the same unit with one misspelt value, and with a broken
    // section header, must be rejected.
    let broken = dir.path().join("broken");
    std::fs::create_dir(&broken).unwrap();
    for (from, to) in [
        ("ProtectSystem=strict", "ProtectSystem=strickt"),
        ("[Service]", "[Servise]"),
    ] {
        let bad = unit_for_verify(&broken, &unit.replace(from, to));
        assert!(verify(&bad).is_err(), "verify accepted a unit with {to}");
    }
}

#[test]
fn systemd_unit_keeps_its_hardening_and_contract() {
    let unit = read("hardware/systemd/loyalty-agent.service");
    let s = unit_settings(&unit);
    let one = |k: &str| -> &str {
        match s.get(k).map(Vec::as_slice) {
            Some([v]) => v,
            other => panic!("{k}: expected exactly one value, found {other:?}"),
        }
    };
    assert_eq!(
        one("ExecStart"),
        "/usr/bin/loyalty-agent run --config /etc/loyalty-agent/agent.toml --log-format json"
    );
    for (k, v) in [
        ("User", "loyalty"),
        ("Group", "loyalty"),
        ("SupplementaryGroups", "dialout"),
        ("StateDirectory", "loyalty-agent"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", ""),
        ("DevicePolicy", "closed"),
        ("Restart", "on-failure"),
        // The agent's exit for a bad config: restarting cannot fix it.
        ("RestartPreventExitStatus", "78"),
        ("KillSignal", "SIGTERM"),
    ] {
        assert_eq!(one(k), v, "{k}");
    }
    for k in [
        "RestartSec",
        "TimeoutStopSec",
        "StartLimitIntervalSec",
        "StartLimitBurst",
    ] {
        one(k);
    }
    assert_eq!(
        s["DeviceAllow"],
        ["char-ttyUSB rw", "char-ttyACM rw", "char-ttyS rw"]
    );
    // A store box must boot into selling with its uplink down.
    for k in ["Wants", "After", "Requires"] {
        for v in s.get(k).into_iter().flatten() {
            assert!(!v.contains("network-online"), "{k}={v}");
        }
    }
    assert!(s["SystemCallFilter"].contains(&"@system-service".to_string()));
    // A watchdog needs a process that pets it: the agent does (sd_notify), under Type=notify.
    assert_eq!(one("Type"), "notify", "the agent says READY=1 itself");
    assert_eq!(one("NotifyAccess"), "main");
    one("WatchdogSec");
    // Room for http-edge's full connection cap (4,096) plus the 128 descriptors it keeps back.
    let files: u64 = one("LimitNOFILE").parse().expect("LimitNOFILE is a number");
    assert!(files >= 4_096 + 128, "LimitNOFILE={files}");

    // The example config (the package's conffile) writes where the unit lets it.
    let config = read("config/agent.toml");
    assert!(
        config.contains(&format!(
            "data_dir = \"/var/lib/{}\"",
            one("StateDirectory")
        )),
        "config/agent.toml's data_dir is not the unit's StateDirectory"
    );

    // systemd's own exposure score (0 best, 10 worst): 2.0 or less is its "OK" band. The
    // offline mode exists since systemd 250.
    let dir = tempfile::tempdir().expect("tempdir");
    let path = unit_for_verify(dir.path(), &unit);
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=20"])
        .arg(&path));
    let stderr = text(&out.stderr);
    if stderr.contains("unrecognized option") {
        eprintln!("SKIPPED exposure score: systemd-analyze here is older than 250 (no --offline)");
    } else {
        assert!(
            out.status.success(),
            "exposure above 2.0:\n{}{stderr}",
            text(&out.stdout)
        );
    }
}

#[test]
fn example_config_and_unit_command_line_are_accepted_by_the_agent() {
    // The conffile as shipped, with the global flag the unit passes.
    let out = run(Command::new(agent_binary())
        .args(["--log-format", "json", "check-config", "--config"])
        .arg(root().join("config/agent.toml")));
    assert!(
        out.status.success(),
        "config/agent.toml: {}",
        text(&out.stderr)
    );
}

// ---------------------------------------------------------------------------------------------
// udev

/// One rule line: (key, attribute, operator, value) per comma-separated clause.
type Rule = Vec<(String, Option<String>, String, String)>;

fn parse_udev(rules: &str) -> Vec<Rule> {
    let keys: BTreeSet<&str> = [
        "ACTION",
        "SUBSYSTEM",
        "SUBSYSTEMS",
        "KERNEL",
        "ATTRS",
        "ATTR",
        "ENV",
        "IMPORT",
        "GOTO",
        "LABEL",
        "GROUP",
        "MODE",
        "OWNER",
        "SYMLINK",
        "TAG",
    ]
    .into();
    let mut out = Vec::new();
    for (n, line) in rules.lines().enumerate().map(|(n, l)| (n + 1, l.trim())) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut rule = Rule::new();
        // Values are double-quoted and never contain `", `, so splitting there is exact.
        for clause in line.split("\", ") {
            let clause = clause.trim_end_matches('"');
            let op_at = clause
                .find(['=', '!', '+', ':', '-'])
                .unwrap_or_else(|| panic!("line {n}: no operator in {clause:?}"));
            let (lhs, rest) = clause.split_at(op_at);
            let op = ["==", "!=", "+=", "-=", ":=", "="]
                .into_iter()
                .find(|op| rest.starts_with(op))
                .unwrap_or_else(|| panic!("line {n}: bad operator in {clause:?}"));
            let value = rest[op.len()..]
                .strip_prefix('"')
                .unwrap_or_else(|| panic!("line {n}: value not quoted in {clause:?}"));
            assert!(!value.contains('"'), "line {n}: stray quote in {clause:?}");
            let (key, attr) = match lhs.split_once('{') {
                Some((k, a)) => (
                    k,
                    Some(
                        a.strip_suffix('}')
                            .unwrap_or_else(|| panic!("line {n}: {lhs}"))
                            .to_string(),
                    ),
                ),
                None => (lhs, None),
            };
            assert!(keys.contains(key), "line {n}: unknown key {key}");
            let is_match = op == "==" || op == "!=";
            let match_only = ["ACTION", "SUBSYSTEM", "SUBSYSTEMS", "KERNEL", "ATTRS"];
            assert!(
                !match_only.contains(&key) || is_match,
                "line {n}: {key} can only be matched"
            );
            assert!(
                !["GOTO", "LABEL", "GROUP", "MODE", "IMPORT"].contains(&key) || op == "=",
                "line {n}: {key} takes ="
            );
            rule.push((key.to_string(), attr, op.to_string(), value.to_string()));
        }
        out.push(rule);
    }
    out
}

/// Shell-style glob with `*` and `?`, as udev matches.
fn glob(pattern: &[u8], s: &[u8]) -> bool {
    match (pattern.first(), s.first()) {
        (None, None) => true,
        (Some(b'*'), _) => glob(&pattern[1..], s) || (!s.is_empty() && glob(pattern, &s[1..])),
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &s[1..]),
        (Some(p), Some(c)) if p == c => glob(&pattern[1..], &s[1..]),
        _ => false,
    }
}

/// `$env{KEY}` expanded from `env`; an unset key expands to nothing, as in udev.
fn subst(env: &BTreeMap<String, String>, value: &str) -> String {
    let mut v = value.to_string();
    while let Some(at) = v.find("$env{") {
        let end = v[at..].find('}').expect("closing brace") + at;
        let key = &v[at + 5..end];
        let val = env.get(key).cloned().unwrap_or_default();
        v.replace_range(at..=end, &val);
    }
    v
}

/// (GROUP, MODE, SYMLINKs, ENV) after the rules ran.
type Outcome = (
    Option<String>,
    Option<String>,
    Vec<String>,
    BTreeMap<String, String>,
);

/// What udev would do with these rules for one tty device.
/// `props` stands for what the usb_id/path_id builtins import; `attrs` for parents' sysfs.
fn evaluate(rules: &[Rule], props: &[(&str, &str)], attrs: &[(&str, &str)]) -> Outcome {
    let mut env: BTreeMap<String, String> = props
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let (mut group, mut mode, mut links) = (None, None, Vec::new());
    let mut skip_to: Option<String> = None;
    for rule in rules {
        if let Some(label) = &skip_to {
            if rule.iter().any(|(k, _, _, v)| k == "LABEL" && v == label) {
                skip_to = None;
            }
            continue;
        }
        let matches = rule.iter().all(|(key, attr, op, value)| {
            let actual = match key.as_str() {
                "ACTION" => "add".to_string(),
                "SUBSYSTEM" => "tty".to_string(),
                // The parents of a USB serial port: usb-serial or usb interface, usb device.
                "SUBSYSTEMS" => {
                    return (op == "==") == (value == "usb");
                }
                "ENV" => env
                    .get(attr.as_deref().unwrap())
                    .cloned()
                    .unwrap_or_default(),
                "ATTRS" => attrs
                    .iter()
                    .find(|(k, _)| Some(*k) == attr.as_deref())
                    .map(|(_, v)| v.to_string())
                    .unwrap_or_default(),
                _ => return true, // an assignment: not a condition
            };
            match op.as_str() {
                "==" => glob(value.as_bytes(), actual.as_bytes()),
                "!=" => !glob(value.as_bytes(), actual.as_bytes()),
                _ => true,
            }
        });
        if !matches {
            continue;
        }
        for (key, attr, op, value) in rule {
            match (key.as_str(), op.as_str()) {
                ("ENV", "=") => {
                    let v = subst(&env, value);
                    env.insert(attr.clone().unwrap(), v);
                }
                ("GROUP", _) => group = Some(value.clone()),
                ("MODE", _) => mode = Some(value.clone()),
                ("SYMLINK", "+=") => links.push(subst(&env, value)),
                ("GOTO", _) => skip_to = Some(value.clone()),
                _ => {}
            }
        }
    }
    assert!(skip_to.is_none(), "GOTO without its LABEL");
    (group, mode, links, env)
}

#[test]
fn udev_rules_parse_and_name_every_supported_device() {
    let text_rules = read("hardware/udev/70-loyalty-agent.rules");
    let rules = parse_udev(&text_rules);
    let labels: BTreeSet<&str> = rules
        .iter()
        .flatten()
        .filter(|c| c.0 == "LABEL")
        .map(|c| c.3.as_str())
        .collect();
    for goto in rules.iter().flatten().filter(|c| c.0 == "GOTO") {
        assert!(
            labels.contains(goto.3.as_str()),
            "GOTO {} has no LABEL",
            goto.3
        );
    }

    let usb = |vid, pid, serial| {
        vec![
            ("ID_VENDOR_ID", vid),
            ("ID_MODEL_ID", pid),
            ("ID_SERIAL_SHORT", serial),
            ("ID_USB_INTERFACE_NUM", "00"),
            ("ID_PATH_TAG", "pci-0000_00_14_0-usb-0_3_1_0"),
        ]
    };
    for (vid, pid, serial, attrs, want) in [
        ("0c2e", "0b61", "21034B0457", vec![], "scanner-21034B0457"),
        ("05e0", "1701", "S2112352", vec![], "scanner-S2112352"),
        ("05f9", "4204", "G19A01234", vec![], "scanner-G19A01234"),
        ("1915", "520f", "NODE0001", vec![], "sensor-NODE0001"),
        (
            "1366",
            "1015",
            "000683123456",
            vec![],
            "sensor-000683123456",
        ),
        (
            "0403",
            "6001",
            "FT1ABCDE",
            vec![("product", "TTL232R-3V3")],
            "sensor-FT1ABCDE",
        ),
        // No USB serial number: named after the USB port it is plugged into.
        (
            "0c2e",
            "0b61",
            "",
            vec![],
            "scanner-port-pci-0000_00_14_0-usb-0_3_1_0",
        ),
    ] {
        let (group, mode, links, env) = evaluate(&rules, &usb(vid, pid, serial), &attrs);
        assert_eq!(group.as_deref(), Some("loyalty"), "{vid}:{pid}");
        assert_eq!(mode.as_deref(), Some("0660"), "{vid}:{pid}");
        assert_eq!(links, [format!("loyalty/{want}")], "{vid}:{pid}");
        assert_eq!(
            env.get("ID_MM_DEVICE_IGNORE").map(String::as_str),
            Some("1")
        );
    }

    // A second serial interface of one device gets its own name.
    let mut second = usb("1366", "1015", "000683123456");
    second[3] = ("ID_USB_INTERFACE_NUM", "02");
    let (_, _, links, _) = evaluate(&rules, &second, &[]);
    assert_eq!(links, ["loyalty/sensor-000683123456-if02"]);

    // Left alone: other USB serial devices, the nRF DFU bootloader, any other FT232R.
    for (vid, pid, attrs) in [
        ("2341", "0043", vec![]),
        ("1915", "521f", vec![]),
        ("0403", "6001", vec![("product", "FT232R USB UART")]),
    ] {
        let (group, mode, links, _) = evaluate(&rules, &usb(vid, pid, "X1"), &attrs);
        assert_eq!(
            (group, mode, links),
            (None, None, vec![]),
            "{vid}:{pid} must not be claimed"
        );
    }

    match Command::new("udevadm").args(["verify", "--help"]).output() {
        Ok(o) if o.status.success() => {
            let out = run(Command::new("udevadm")
                .args(["verify", "--no-style"])
                .arg(root().join("hardware/udev/70-loyalty-agent.rules")));
            assert!(
                out.status.success(),
                "udevadm verify:\n{}{}",
                text(&out.stdout),
                text(&out.stderr)
            );
        }
        _ => eprintln!(
            "SKIPPED udevadm verify: needs systemd >= 254 (udev here is older or absent); \
             the rules were parsed and evaluated above instead"
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Scanner profiles

#[test]
fn scanner_profiles_lane_snippets_pass_check_config() {
    let rules = read("hardware/udev/70-loyalty-agent.rules");
    for (file, vid) in [
        ("honeywell.md", "0c2e"),
        ("zebra.md", "05e0"),
        ("datalogic.md", "05f9"),
    ] {
        let doc = read(&format!("hardware/scanners/{file}"));
        for needed in [vid, "AIM", "CR", "9600", "8 data bits"] {
            assert!(doc.contains(needed), "{file} does not mention {needed}");
        }
        assert!(
            rules.contains(&format!("ENV{{ID_VENDOR_ID}}==\"{vid}\"")),
            "udev rules miss {vid}"
        );
        let blocks: Vec<&str> = doc
            .split("```toml\n")
            .skip(1)
            .map(|b| b.split("```").next().unwrap())
            .collect();
        assert!(!blocks.is_empty(), "{file} has no agent.toml snippet");
        for block in blocks {
            let store = Store::new(block);
            let out = run(Command::new(agent_binary())
                .args(["check-config", "--config"])
                .arg(&store.config));
            assert!(
                out.status.success(),
                "{file} snippet rejected:\n{block}\n{}",
                text(&out.stderr)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Upgrade: the preinst's ledger backup

const MEMBERS: &str = r#"[{"member_id": "m-anna", "tier": "gold", "cards": ["4006381333931"]}]"#;

#[test]
fn preinst_backs_up_the_ledger_and_the_backup_restores() {
    // A ledger with one credited sale, stopped the way prerm stops it (SIGTERM).
    let store = Store::new("[[lanes]]\nid = \"1\"\n");
    store.import(MEMBERS);
    let mut agent = store.start();
    let sale: Value = reqwest::blocking::Client::new()
        .post(store.url("/v1/lanes/1/sales"))
        .json(
            &serde_json::json!({"receipt_id": "r-1", "total_cents": 3000, "card": "4006381333931"}),
        )
        .send()
        .and_then(|r| r.error_for_status())
        .and_then(|r| r.json())
        .expect("sale answered");
    let balance = sale["balance"].clone();
    assert!(balance.as_i64().unwrap() > 0, "{sale}");
    assert_eq!(agent.terminate(), Some(0));

    let data = store.dir.path().join("data");
    let backups = data.join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    // Six earlier package backups (one over the limit of 5) and one the agent took itself.
    for day in 1..=6 {
        std::fs::write(
            backups.join(format!("ledger-2025010{day}T000000Z-0.0.{day}.db")),
            "old",
        )
        .unwrap();
    }
    std::fs::write(backups.join("ledger-before-migration-3.db"), "agent's").unwrap();

    let out = run(Command::new("sh")
        .arg(root().join("scripts/deb/preinst"))
        .args(["upgrade", "0.0.9"])
        .env("LOYALTY_AGENT_STATE_DIR", &data)
        .env("LOYALTY_AGENT_BIN", agent_binary()));
    assert!(
        out.status.success(),
        "preinst failed:\n{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let names: BTreeSet<String> = std::fs::read_dir(&backups)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let new: Vec<&String> = names.iter().filter(|n| n.ends_with("-0.0.9.db")).collect();
    assert_eq!(new.len(), 1, "{names:?}");
    assert!(
        names.contains("ledger-before-migration-3.db"),
        "the agent's own backup was pruned: {names:?}"
    );
    let package_backups = names
        .iter()
        .filter(|n| *n != "ledger-before-migration-3.db")
        .count();
    assert_eq!(package_backups, 5, "keeps the newest 5: {names:?}");
    assert!(
        !names
            .iter()
            .any(|n| n.ends_with("-wal") || n.ends_with(".partial")),
        "the agent's backup is one self-contained file: {names:?}"
    );
    assert!(
        !names
            .iter()
            .any(|n| n.contains("20250101T") || n.contains("20250102T")),
        "the oldest two should be gone: {names:?}"
    );

    // The backup is a ledger the agent opens with the sale in it.
    let restored = Store::new("[[lanes]]\nid = \"1\"\n");
    let rdata = restored.dir.path().join("data");
    std::fs::create_dir_all(&rdata).unwrap();
    std::fs::copy(backups.join(new[0]), rdata.join("ledger.db")).unwrap();
    let wal = backups.join(format!("{}-wal", new[0]));
    if wal.exists() {
        std::fs::copy(&wal, rdata.join("ledger.db-wal")).unwrap();
    }
    let mut agent = restored.start();
    let member: Value = reqwest::blocking::get(restored.url("/v1/members/m-anna"))
        .and_then(|r| r.json())
        .expect("member answered");
    assert_eq!(member["balance"], balance, "{member}");
    agent.terminate();
}

// ---------------------------------------------------------------------------------------------
// The .deb

/// `scripts/package.sh --fast` (the release build, the generated man page and completion,
/// cargo-deb) once per test run.
fn deb() -> &'static Path {
    static DEB: OnceLock<PathBuf> = OnceLock::new();
    DEB.get_or_init(|| {
        let out = run(Command::new("bash")
            .arg(root().join("scripts/package.sh"))
            .arg("--fast"));
        assert!(
            out.status.success(),
            "scripts/package.sh failed (cargo-deb comes from scripts/setup.sh):\n{}",
            text(&out.stderr)
        );
        // cargo-deb prints the path of the package it wrote as its last line.
        let path = PathBuf::from(text(&out.stdout).trim().lines().last().expect("deb path"));
        assert!(path.is_file(), "{path:?}");
        path
    })
}

/// lintian's E: and W: lines for `deb`.
fn lintian(deb: &Path) -> Vec<String> {
    let out = Command::new("lintian")
        .arg("--no-tag-display-limit")
        .arg(deb)
        .output()
        .unwrap_or_else(|e| panic!("running lintian: {e} (scripts/setup.sh installs it)"));
    text(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("E: ") || l.starts_with("W: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn deb_passes_lintian() {
    let deb = deb();
    let found = lintian(deb);
    assert!(
        found.is_empty(),
        "lintian on {}:\n{}",
        deb.display(),
        found.join("\n")
    );
    // The one tag overridden says why, in the package (README, "Deployment").
    let overrides = read("scripts/deb/lintian-overrides");
    for line in overrides
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        assert!(line.starts_with("loyalty-agent: "), "{line}");
    }
    assert!(overrides.lines().filter(|l| l.starts_with('#')).count() >= 2);

    // And it does find what it should: the same package with a maintainer script calling
    // systemctl, as ours did, is refused.
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    assert!(run(Command::new("dpkg-deb").arg("-R").arg(deb).arg(&tree))
        .status
        .success());
    let postinst = tree.join("DEBIAN/postinst");
    let script = std::fs::read_to_string(&postinst).unwrap();
    std::fs::write(
        &postinst,
        script.replace(
            "exit 0\n",
            "systemctl enable loyalty-agent.service\nexit 0\n",
        ),
    )
    .unwrap();
    let broken = dir.path().join("broken.deb");
    let built = run(Command::new("dpkg-deb")
        .args(["--root-owner-group", "-Zgzip", "-b"])
        .arg(&tree)
        .arg(&broken));
    assert!(built.status.success(), "{}", text(&built.stderr));
    let found = lintian(&broken);
    assert!(
        found
            .iter()
            .any(|l| l.contains("maintainer-script-calls-systemctl")),
        "{found:?}"
    );
}

#[test]
fn deb_holds_the_agent_unit_conffile_udev_rules_and_scripts() {
    let deb = deb();
    let out = run(Command::new("dpkg-deb").arg("-c").arg(deb));
    assert!(out.status.success());
    let listing = text(&out.stdout);
    // "mode owner size date time ./path"; owner as root, numeric or by name.
    let entry = |path: &str| -> String {
        let line = listing
            .lines()
            .find(|l| l.ends_with(&format!(" .{path}")))
            .unwrap_or_else(|| panic!("{path} not in the .deb:\n{listing}"));
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert!(["0/0", "root/root"].contains(&fields[1]), "{line}");
        fields[0].to_string()
    };
    assert_eq!(entry("/usr/bin/loyalty-agent"), "-rwxr-xr-x");
    assert_eq!(
        entry("/lib/systemd/system/loyalty-agent.service"),
        "-rw-r--r--"
    );
    // The config may hold the HQ token: postinst gives group loyalty read access.
    assert_eq!(entry("/etc/loyalty-agent/agent.toml"), "-rw-r-----");
    assert_eq!(
        entry("/lib/udev/rules.d/70-loyalty-agent.rules"),
        "-rw-r--r--"
    );
    for doc in ["honeywell.md", "zebra.md", "datalogic.md", "README.md"] {
        entry(&format!("/usr/share/doc/loyalty-agent/scanners/{doc}"));
    }
    assert_eq!(
        entry("/usr/share/man/man1/loyalty-agent.1.gz"),
        "-rw-r--r--"
    );
    entry("/usr/share/bash-completion/completions/loyalty-agent");
    entry("/usr/share/doc/loyalty-agent/changelog.Debian.gz");

    let info = text(&run(Command::new("dpkg-deb").arg("-I").arg(deb)).stdout);
    for script in ["preinst", "postinst", "prerm", "postrm", "conffiles"] {
        assert!(
            // "  3113 bytes,    72 lines   *  postinst   #!/bin/sh"
            info.lines()
                .any(|l| l.contains(" bytes, ") && l.split_whitespace().any(|w| w == script)),
            "{script} missing from dpkg-deb -I:\n{info}"
        );
    }
    assert!(
        info.contains("Depends:") && info.contains("adduser"),
        "{info}"
    );

    // The control files are ours byte for byte, and agent.toml is a conffile.
    let control = tempfile::tempdir().unwrap();
    assert!(run(Command::new("dpkg-deb")
        .arg("-e")
        .arg(deb)
        .arg(control.path().join("DEBIAN")))
    .status
    .success());
    let conffiles = std::fs::read_to_string(control.path().join("DEBIAN/conffiles")).unwrap();
    assert!(
        conffiles
            .lines()
            .any(|l| l == "/etc/loyalty-agent/agent.toml"),
        "{conffiles}"
    );
    for script in ["preinst", "postinst", "prerm", "postrm"] {
        assert_eq!(
            std::fs::read(control.path().join("DEBIAN").join(script)).unwrap(),
            std::fs::read(root().join("scripts/deb").join(script)).unwrap(),
            "{script} in the .deb differs from scripts/deb/{script}"
        );
    }

    // The packaged files are the repository's, and the packaged binary runs.
    let tree = tempfile::tempdir().unwrap();
    assert!(
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(tree.path()))
            .status
            .success()
    );
    for (packaged, source) in [
        (
            "lib/systemd/system/loyalty-agent.service",
            "hardware/systemd/loyalty-agent.service",
        ),
        ("etc/loyalty-agent/agent.toml", "config/agent.toml"),
        (
            "lib/udev/rules.d/70-loyalty-agent.rules",
            "hardware/udev/70-loyalty-agent.rules",
        ),
    ] {
        assert_eq!(
            std::fs::read(tree.path().join(packaged)).unwrap(),
            std::fs::read(root().join(source)).unwrap(),
            "{packaged}"
        );
    }
    let version = run(Command::new(tree.path().join("usr/bin/loyalty-agent")).arg("--version"));
    assert!(
        version.status.success() && text(&version.stdout).starts_with("loyalty-agent "),
        "{version:?}"
    );
    // The store box's binary carries no demo and no simulation (built without `demo`).
    let help = run(Command::new(tree.path().join("usr/bin/loyalty-agent")).arg("--help"));
    let help = text(&help.stdout);
    assert!(help.contains("rebase") && !help.contains("demo"), "{help}");
}

// ---------------------------------------------------------------------------------------------
// The maintainer scripts' systemd handling, run for real (deb-systemd-helper included) in a
// scratch root through DPKG_ROOT, with the side effects on this machine's users stubbed.

struct Root {
    dir: tempfile::TempDir,
    stubs: tempfile::TempDir,
}

impl Root {
    fn new() -> Root {
        let dir = tempfile::tempdir().unwrap();
        for d in [
            "lib/systemd/system",
            "etc/systemd/system",
            "etc/loyalty-agent",
        ] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let stubs = tempfile::tempdir().unwrap();
        for tool in ["adduser", "dpkg-statoverride", "chown", "udevadm"] {
            let path = stubs.path().join(tool);
            std::fs::write(&path, "#!/bin/sh\nexit 0\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let root = Root { dir, stubs };
        root.unpack();
        root
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// What dpkg unpacks: the unit (the conffile is written by the test).
    fn unpack(&self) {
        std::fs::copy(
            root().join("hardware/systemd/loyalty-agent.service"),
            self.path("lib/systemd/system/loyalty-agent.service"),
        )
        .unwrap();
    }

    fn config(&self, text: &str) {
        std::fs::write(self.path("etc/loyalty-agent/agent.toml"), text).unwrap();
    }

    /// Runs `scripts/deb/<script> args` as dpkg would; its output.
    fn script(&self, script: &str, args: &[&str]) -> String {
        let path = format!(
            "{}:{}",
            self.stubs.path().display(),
            std::env::var("PATH").unwrap()
        );
        let out = run(Command::new("sh")
            .arg(root().join("scripts/deb").join(script))
            .args(args)
            .env("PATH", path)
            .env("DPKG_ROOT", self.dir.path())
            .env("DPKG_MAINTSCRIPT_PACKAGE", "loyalty-agent")
            .env("DPKG_MAINTSCRIPT_NAME", script)
            .env("LOYALTY_AGENT_BIN", agent_binary())
            .env(
                "LOYALTY_AGENT_STATE_DIR",
                self.path("var/lib/loyalty-agent"),
            ));
        assert!(
            out.status.success(),
            "{script} {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        text(&out.stdout)
    }

    /// Enabled: the link multi-user.target wants.
    fn enabled(&self) -> bool {
        self.path("etc/systemd/system/multi-user.target.wants/loyalty-agent.service")
            .is_symlink()
    }

    fn masked(&self) -> bool {
        std::fs::read_link(self.path("etc/systemd/system/loyalty-agent.service"))
            .is_ok_and(|t| t == Path::new("/dev/null"))
    }
}

#[test]
fn the_unit_is_not_enabled_with_the_example_config_and_survives_remove_then_reinstall() {
    let r = Root::new();
    let real = "[store]\nid = \"store-7\"\ndata_dir = \"/var/lib/loyalty-agent\"\n";

    // First install: the example's placeholder HQ. Not enabled; told what to do.
    r.config(&read("config/agent.toml"));
    let said = r.script("postinst", &["configure", ""]);
    assert!(!r.enabled(), "enabled with the example config");
    assert!(
        said.contains("systemctl enable --now loyalty-agent.service"),
        "{said}"
    );
    // An upgrade after the config was edited keeps the operator's choice: still disabled.
    r.config(real);
    r.script("postinst", &["configure", "0.1.0-1"]);
    assert!(!r.enabled());

    // The operator enables it; remove keeps that (masked while the unit file is gone)...
    let out = run(Command::new("systemctl")
        .arg(format!("--root={}", r.dir.path().display()))
        .args(["enable", "loyalty-agent.service"]));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(r.enabled());
    r.script("prerm", &["remove"]);
    std::fs::remove_file(r.path("lib/systemd/system/loyalty-agent.service")).unwrap();
    r.script("postrm", &["remove"]);
    assert!(r.masked());
    // ...and a reinstall (dpkg passes the version whose config files stayed) comes back enabled.
    r.unpack();
    r.script("preinst", &["install", "0.1.0-1"]);
    r.script("postinst", &["configure", "0.1.0-1"]);
    assert!(r.enabled() && !r.masked());

    // Purge forgets it all; a new install with a real config is enabled.
    r.script("prerm", &["remove"]);
    std::fs::remove_file(r.path("lib/systemd/system/loyalty-agent.service")).unwrap();
    r.script("postrm", &["remove"]);
    r.script("postrm", &["purge"]);
    assert!(!r.enabled() && !r.masked());
    r.unpack();
    r.script("postinst", &["configure", ""]);
    assert!(r.enabled());
}
