//! `loyalty-agent ports`: every serial port with the names that point at it (`/dev/loyalty/*`
//! from the package's udev rules, `/dev/serial/by-id/*`), its USB identity, which lane or sensor
//! of the config it serves, and the configured ports that are not there.

use crate::config::Config;
use crate::serial::{PortInfo, PortSource};
use serde::Serialize;
use std::path::{Path, PathBuf};

/// Where udev puts the stable names of serial ports.
pub const LINK_DIRS: &[&str] = &["/dev/loyalty", "/dev/serial/by-id", "/dev/serial/by-path"];

#[derive(Debug, Serialize)]
pub struct PortsReport {
    pub ports: Vec<PortLine>,
    /// Configured ports that no present port answers to.
    pub missing: Vec<MissingPort>,
}

#[derive(Debug, Serialize)]
pub struct PortLine {
    pub path: String,
    /// Symlinks that resolve to this port.
    pub names: Vec<String>,
    /// `vid:pid` in hex, as lsusb prints it.
    pub usb: Option<String>,
    pub serial_number: Option<String>,
    pub product: Option<String>,
    /// `lane 1`, `sensor door`, or None.
    pub serves: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct MissingPort {
    /// `lane 1` or `sensor door`.
    pub serves: String,
    /// As configured: a path, or `usb VID:PID [serial S]`.
    pub port: String,
    /// What to check.
    pub hint: String,
}

/// Builds the report from the ports present and the links in `link_dirs`.
pub fn report(ports: &[PortInfo], config: Option<&Config>, link_dirs: &[&Path]) -> PortsReport {
    let links = links_in(link_dirs);
    let configured: Vec<(String, &PortSource)> = config
        .map(|c| {
            c.lanes
                .iter()
                .filter_map(|l| {
                    l.scanner
                        .as_ref()
                        .map(|s| (format!("lane {}", l.id), &s.source))
                })
                .chain(
                    c.sensors
                        .iter()
                        .map(|s| (format!("sensor {}", s.name), &s.source)),
                )
                .collect()
        })
        .unwrap_or_default();
    let lines: Vec<PortLine> = ports
        .iter()
        .map(|p| {
            let real = canonical(Path::new(&p.path));
            PortLine {
                path: p.path.clone(),
                names: links
                    .iter()
                    .filter(|(_, target)| target == &real)
                    .map(|(link, _)| link.display().to_string())
                    .collect(),
                usb: p.vid.zip(p.pid).map(|(v, d)| format!("{v:04x}:{d:04x}")),
                serial_number: p.serial_number.clone(),
                product: p.product.clone(),
                serves: configured
                    .iter()
                    .find(|(_, source)| serves(source, p, &real))
                    .map(|(who, _)| who.clone()),
            }
        })
        .collect();
    let missing = configured
        .iter()
        .filter(|(_, source)| !ports.iter().any(|p| serves(source, p, &canonical(Path::new(&p.path)))))
        .filter_map(|(who, source)| {
            let hint = match source {
                // A path that exists but is not a listed port (a pseudo-terminal, a node
                // without a sysfs entry) is there: not missing.
                PortSource::Path(path) if path.exists() => return None,
                PortSource::Path(path) if path.starts_with("/dev/loyalty") => format!(
                    "{} does not exist: the device is unplugged, or the udev rules do not know it (hardware/udev/README.md)",
                    path.display()
                ),
                PortSource::Path(path) => format!("{} does not exist: is the device plugged in?", path.display()),
                PortSource::Usb { .. } => "no port with this USB id is plugged in: check the cable, or the id against the list above".to_owned(),
            };
            Some(MissingPort {
                serves: who.clone(),
                port: source.to_string(),
                hint,
            })
        })
        .collect();
    PortsReport {
        ports: lines,
        missing,
    }
}

/// The report as lines: one per port, tab-separated, then one per missing port.
pub fn write_text(report: &PortsReport, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    if report.ports.is_empty() {
        writeln!(out, "no serial ports with a device behind them")?;
    }
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
    for p in &report.ports {
        writeln!(
            out,
            "{}\tusb {}\tserial {}\t{}\t{}{}",
            p.path,
            or_dash(&p.usb),
            or_dash(&p.serial_number),
            or_dash(&p.product),
            or_dash(&p.serves),
            if p.names.is_empty() {
                String::new()
            } else {
                format!("\talso {}", p.names.join(", "))
            }
        )?;
    }
    for m in &report.missing {
        writeln!(out, "MISSING\t{}\t{}\t{}", m.serves, m.port, m.hint)?;
    }
    Ok(())
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

/// (link, what it resolves to) for every symlink directly in `dirs`.
fn links_in(dirs: &[&Path]) -> Vec<(PathBuf, PathBuf)> {
    let mut links: Vec<(PathBuf, PathBuf)> = dirs
        .iter()
        .filter_map(|d| std::fs::read_dir(d).ok())
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_symlink())
        .map(|p| {
            let target = canonical(&p);
            (p, target)
        })
        .collect();
    links.sort();
    links
}

fn serves(source: &PortSource, port: &PortInfo, real: &Path) -> bool {
    match source {
        PortSource::Path(path) => path.as_os_str() == port.path.as_str() || canonical(path) == real,
        PortSource::Usb { vid, pid, serial } => {
            port.vid == Some(*vid)
                && port.pid == Some(*pid)
                && (serial.is_none() || serial == &port.serial_number)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(path: &Path, usb: Option<(u16, u16, &str)>) -> PortInfo {
        PortInfo {
            path: path.display().to_string(),
            vid: usb.map(|u| u.0),
            pid: usb.map(|u| u.1),
            serial_number: usb.map(|u| u.2.to_owned()),
            manufacturer: None,
            product: None,
        }
    }

    #[test]
    fn symlinks_name_their_port_and_missing_ports_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let dev = dir.path();
        let tty = dev.join("ttyACM0");
        std::fs::write(&tty, "").unwrap();
        let links = dev.join("loyalty");
        std::fs::create_dir(&links).unwrap();
        let link = links.join("scanner-21034B0457");
        std::os::unix::fs::symlink(&tty, &link).unwrap();
        let toml = format!(
            "[store]\nid = \"s\"\ndata_dir = \"d\"\n\
             [[lanes]]\nid = \"1\"\n[lanes.scanner]\nport = \"{}\"\n\
             [[lanes]]\nid = \"2\"\n[lanes.scanner]\nport = \"{}\"\n\
             [[lanes]]\nid = \"3\"\n[lanes.scanner]\nusb = \"05e0:1701\"\n",
            link.display(),
            links.join("scanner-GONE").display()
        );
        let config = Config::parse(&toml, &dev.join("agent.toml")).unwrap();
        let r = report(
            &[port(&tty, Some((0x0c2e, 0x0b61, "21034B0457")))],
            Some(&config),
            &[links.as_path()],
        );
        assert_eq!(r.ports[0].names, vec![link.display().to_string()]);
        // Configured by its symlink, served all the same.
        assert_eq!(r.ports[0].serves.as_deref(), Some("lane 1"));
        let missing: Vec<(&str, &str)> = r
            .missing
            .iter()
            .map(|m| (m.serves.as_str(), m.port.as_str()))
            .collect();
        let gone = links.join("scanner-GONE").display().to_string();
        assert_eq!(
            missing,
            vec![("lane 2", gone.as_str()), ("lane 3", "usb 05e0:1701")]
        );
        let mut text = Vec::new();
        write_text(&r, &mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains(&format!("also {}", link.display())), "{text}");
        assert!(text.contains("MISSING\tlane 3\tusb 05e0:1701"), "{text}");
    }
}
