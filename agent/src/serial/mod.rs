//! Serial ports: where a device is (a path, or a USB id that survives re-plugging), listing,
//! opening, and [`supervise`]: keeping one device open for the life of the agent, whatever it
//! is (a lane's scanner, a zone-sensor node).
//!
//! Listing reads `/sys/class/tty` (serialport without libudev), which carries the USB vendor,
//! product and serial number of USB serial devices; ports without a device (ptys, consoles) are
//! not listed.

pub mod supervise;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serialport::{
    ClearBuffer, DataBits, FlowControl, Parity, SerialPort, SerialPortType, StopBits,
};
use tracing::warn;

pub use supervise::{supervise_device, DeviceState, SerialDevice, STABLE_AFTER};

/// Short enough for silence detection and shutdown, long enough not to spin.
pub const READ_TIMEOUT: Duration = Duration::from_millis(50);

/// Where a serial device (a lane's scanner, a sensor node) is found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortSource {
    Path(PathBuf),
    /// Found by USB vendor and product id (and serial number when several scanners of one model
    /// are plugged in), so a scanner keeps its lane whichever `/dev/ttyACM*` it gets.
    Usb {
        vid: u16,
        pid: u16,
        serial: Option<String>,
    },
}

impl PortSource {
    /// `"0c2e:0b61"` (hex, as `lsusb` prints it) and an optional serial number; an empty serial
    /// means none.
    pub fn parse_usb(id: &str, serial: Option<String>) -> Result<Self, PortError> {
        let bad = || PortError::BadUsbId(id.to_owned());
        let (vid, pid) = id.trim().split_once(':').ok_or_else(bad)?;
        let hex4 = |s: &str| {
            if s.len() == 4 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                u16::from_str_radix(s, 16).ok()
            } else {
                None
            }
        };
        Ok(PortSource::Usb {
            vid: hex4(vid).ok_or_else(bad)?,
            pid: hex4(pid).ok_or_else(bad)?,
            serial: serial.filter(|s| !s.trim().is_empty()),
        })
    }
}

impl fmt::Display for PortSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSource::Path(path) => write!(f, "{}", path.display()),
            PortSource::Usb { vid, pid, serial } => {
                write!(f, "usb {vid:04x}:{pid:04x}")?;
                if let Some(serial) = serial {
                    write!(f, " serial {serial}")?;
                }
                Ok(())
            }
        }
    }
}

/// Why a port could not be listed, found or opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PortError {
    #[error("invalid USB id {0:?}: expected vendor:product in hex, like 0c2e:0b61")]
    BadUsbId(String),
    #[error("cannot list serial ports: {0}")]
    List(String),
    #[error("no serial port with {wanted} is plugged in: check the cable and the id (`loyalty-agent ports` lists every port with its USB id)")]
    NotFound { wanted: PortSource },
    #[error("{} serial ports match {wanted}: {}; configure the serial number to pick one (`loyalty-agent ports` shows each one's)", .paths.len(), .paths.join(", "))]
    Ambiguous {
        wanted: PortSource,
        paths: Vec<String>,
    },
    #[error("serial port path {0:?} is not UTF-8")]
    NonUtf8Path(PathBuf),
    #[error("cannot open {}: {source}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: serialport::Error,
    },
}

/// A serial port present on this machine.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PortInfo {
    pub path: String,
    pub vid: Option<u16>,
    pub pid: Option<u16>,
    pub serial_number: Option<String>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
}

/// The serial ports present now, sorted by path.
pub fn list_ports() -> Result<Vec<PortInfo>, PortError> {
    // serialport panics when this directory is missing (a container without /sys).
    #[cfg(target_os = "linux")]
    if !Path::new("/sys/class/tty").is_dir() {
        return Err(PortError::List("/sys/class/tty is missing".into()));
    }
    let ports = serialport::available_ports().map_err(|e| PortError::List(e.to_string()))?;
    let mut infos: Vec<PortInfo> = ports
        .into_iter()
        .map(|p| match p.port_type {
            SerialPortType::UsbPort(usb) => PortInfo {
                path: p.port_name,
                vid: Some(usb.vid),
                pid: Some(usb.pid),
                serial_number: usb.serial_number,
                manufacturer: usb.manufacturer,
                product: usb.product,
            },
            _ => PortInfo {
                path: p.port_name,
                vid: None,
                pid: None,
                serial_number: None,
                manufacturer: None,
                product: None,
            },
        })
        .collect();
    infos.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(infos)
}

/// The device path of `source` now. A path is returned as is (opening it reports whether it
/// exists); a USB id must match exactly one present port.
pub fn resolve(source: &PortSource) -> Result<PathBuf, PortError> {
    match source {
        PortSource::Path(path) => Ok(path.clone()),
        PortSource::Usb { .. } => pick_usb(source, &list_ports()?),
    }
}

fn pick_usb(source: &PortSource, ports: &[PortInfo]) -> Result<PathBuf, PortError> {
    let PortSource::Usb { vid, pid, serial } = source else {
        return Err(PortError::BadUsbId(source.to_string()));
    };
    let paths: Vec<String> = ports
        .iter()
        .filter(|p| p.vid == Some(*vid) && p.pid == Some(*pid))
        .filter(|p| serial.is_none() || p.serial_number.as_deref() == serial.as_deref())
        .map(|p| p.path.clone())
        .collect();
    match paths.as_slice() {
        [] => Err(PortError::NotFound {
            wanted: source.clone(),
        }),
        [one] => Ok(PathBuf::from(one)),
        _ => Err(PortError::Ambiguous {
            wanted: source.clone(),
            paths,
        }),
    }
}

/// Opens `path` 8N1 without flow control, with a [`READ_TIMEOUT`] read timeout, and discards
/// whatever was waiting in the input buffer: bytes scanned while nobody read are stale, and a
/// customer who left minutes ago must not become the lane's member now.
pub fn open(path: &Path, baud: u32) -> Result<Box<dyn SerialPort>, PortError> {
    let name = path
        .to_str()
        .ok_or_else(|| PortError::NonUtf8Path(path.to_owned()))?;
    let port = serialport::new(name, baud)
        .data_bits(DataBits::Eight)
        .parity(Parity::None)
        .stop_bits(StopBits::One)
        .flow_control(FlowControl::None)
        .timeout(READ_TIMEOUT)
        .open()
        .map_err(|source| PortError::Open {
            path: path.to_owned(),
            source,
        })?;
    if let Err(e) = port.clear(ClearBuffer::Input) {
        // Not fatal: a stale scan is worse than none, but a lane without scans is worse still.
        warn!(port = %path.display(), error = %e, "Could not discard stale scanner input.");
    }
    Ok(port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usb(path: &str, vid: u16, pid: u16, serial: Option<&str>) -> PortInfo {
        PortInfo {
            path: path.into(),
            vid: Some(vid),
            pid: Some(pid),
            serial_number: serial.map(Into::into),
            manufacturer: None,
            product: None,
        }
    }

    #[test]
    fn usb_id_picks_one_port() {
        let ports = [
            usb("/dev/ttyACM0", 0x0c2e, 0x0b61, Some("A1")),
            usb("/dev/ttyACM1", 0x0c2e, 0x0b61, Some("B2")),
            usb("/dev/ttyACM2", 0x05e0, 0x1200, None),
            PortInfo {
                path: "/dev/ttyS0".into(),
                vid: None,
                pid: None,
                serial_number: None,
                manufacturer: None,
                product: None,
            },
        ];
        let src = |id: &str, serial: Option<&str>| {
            PortSource::parse_usb(id, serial.map(Into::into)).unwrap()
        };
        assert_eq!(
            pick_usb(&src("0c2e:0b61", Some("B2")), &ports).unwrap(),
            PathBuf::from("/dev/ttyACM1")
        );
        assert_eq!(
            pick_usb(&src("05e0:1200", None), &ports).unwrap(),
            PathBuf::from("/dev/ttyACM2")
        );
        let err = pick_usb(&src("0c2e:0b61", None), &ports).unwrap_err();
        assert!(matches!(&err, PortError::Ambiguous { paths, .. } if paths.len() == 2));
        assert!(
            err.to_string().contains("/dev/ttyACM0, /dev/ttyACM1"),
            "{err}"
        );
        let err = pick_usb(&src("0c2e:0b61", Some("C3")), &ports).unwrap_err();
        assert!(matches!(err, PortError::NotFound { .. }));
        assert_eq!(
            err.to_string(),
            "no serial port with usb 0c2e:0b61 serial C3 is plugged in: check the cable and the id (`loyalty-agent ports` lists every port with its USB id)"
        );
    }

    #[test]
    fn path_resolves_to_itself_and_missing_paths_fail_to_open() {
        let path = PathBuf::from("/nonexistent/ttyACM9");
        assert_eq!(resolve(&PortSource::Path(path.clone())).unwrap(), path);
        let Err(err) = open(&path, 9600) else {
            panic!("opening a missing path succeeded");
        };
        assert!(
            err.to_string()
                .starts_with("cannot open /nonexistent/ttyACM9"),
            "{err}"
        );
    }

    #[test]
    fn listing_does_not_fail_here() {
        // Whatever this machine has, listing must not panic; sorted by path.
        if let Ok(ports) = list_ports() {
            assert!(ports.windows(2).all(|w| w[0].path <= w[1].path));
        }
    }
}
