//! `loyalty_firmware::node::Radio` over trouble-host on Nordic's SoftDevice Controller: passive
//! scanning feeds the scanner half through a channel filled by the host runner's event handler;
//! the beacon half advertises the iBeacon (connectable) with the check-in GATT service.

use core::cell::Cell;

use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::channel::Channel;
use embassy_time::{with_timeout, Duration};
use loyalty_firmware::node::{self, Advertisement as Heard, CheckInWrite};
use nrf_sdc::SoftdeviceController;
use trouble_host::prelude::*;
use trouble_host::scan::{LeAdvReportsIter, ScanSession, Scanner};

/// Advertisements waiting for the scan task. Reports arrive in bursts from the controller;
/// beyond this the radio drops them (counted in [`ReportSink::overflow`]).
pub const REPORT_QUEUE: usize = 16;

/// How long a connected phone has to write its token before we hang up and advertise again.
const CHECK_IN_TIMEOUT: Duration = Duration::from_secs(5);

/// Channel between the host runner (producer) and the scanner half (consumer).
pub type Reports = Channel<NoopRawMutex, Heard, REPORT_QUEUE>;

/// The packet pool trouble-host allocates from (its `default-packet-pool` feature).
pub type Pool = DefaultPacketPool;

/// The controller: concrete, so the radio need not restate trouble's per-command bounds.
pub type Sdc = SoftdeviceController<'static>;

/// Errors of the host over this controller.
pub type RadioError = BleHostError<nrf_sdc::Error>;

/// The check-in GATT service: one write-only characteristic taking the 14 token bytes
/// (`loyalty_firmware::token`). The UUIDs are `loyalty_firmware::token::CHECK_IN_*_UUID`.
#[gatt_service(uuid = "4c450001-8f2a-4b6e-9a51-5d3c2f1e0b7a")]
pub struct CheckInService {
    /// Written by the phone.
    #[characteristic(uuid = "4c450002-8f2a-4b6e-9a51-5d3c2f1e0b7a", write)]
    pub token: [u8; 14],
}

/// The node's GATT server.
#[gatt_server]
pub struct Server {
    /// Check-in.
    pub check_in: CheckInService,
}

/// Scan response: the 128-bit check-in service UUID (little-endian on air), so an app can find
/// the service without connecting to every beacon it hears.
pub const SCAN_DATA: [u8; 18] = {
    let be = loyalty_firmware::token::CHECK_IN_SERVICE_UUID;
    let mut out = [0u8; 18];
    out[0] = 17;
    out[1] = 0x07; // Complete list of 128-bit service UUIDs.
    let mut i = 0;
    while i < 16 {
        out[2 + i] = be[15 - i];
        i += 1;
    }
    out
};

/// Event handler passed to the host runner: copies legacy advertising reports into the channel.
pub struct ReportSink<'a> {
    /// Where reports go.
    pub reports: &'a Reports,
    /// Reports dropped because the scan task fell behind.
    pub overflow: Cell<u32>,
}

impl EventHandler for ReportSink<'_> {
    fn on_adv_reports(&self, reports: LeAdvReportsIter) {
        for report in reports.flatten() {
            // Longer than legacy: not something a phone token or iBeacon uses.
            let Ok(data) = heapless::Vec::from_slice(report.data) else {
                continue;
            };
            let mut addr = [0u8; 6];
            addr.copy_from_slice(report.addr.raw());
            let adv = Heard {
                addr,
                rssi: report.rssi,
                data,
            };
            if self.reports.try_send(adv).is_err() {
                self.overflow.set(self.overflow.get().saturating_add(1));
            }
        }
    }
}

/// The radio handed to `node::run`.
pub struct SdcRadio<'a> {
    /// The host stack.
    pub stack: &'a Stack<'a, Sdc, Pool>,
    /// The GATT server.
    pub server: &'a Server<'a>,
    /// Filled by [`ReportSink`].
    pub reports: &'a Reports,
}

impl<'a> node::Radio for SdcRadio<'a> {
    type Scanner = SdcScanner<'a>;
    type Beacon = SdcBeacon<'a>;

    fn split(self) -> (Self::Scanner, Self::Beacon) {
        (
            SdcScanner {
                central: self.stack.central(),
                reports: self.reports,
                session: None,
            },
            SdcBeacon {
                peripheral: self.stack.peripheral(),
                stack: self.stack,
                server: self.server,
            },
        )
    }
}

/// Scanner half.
pub struct SdcScanner<'a> {
    central: Central<'a, Sdc, Pool>,
    reports: &'a Reports,
    /// Scanning runs while the session lives.
    session: Option<ScanSession<'a, false>>,
}

impl node::Scanner for SdcScanner<'_> {
    type Error = RadioError;

    async fn next(&mut self) -> Result<Heard, Self::Error> {
        if self.session.is_none() {
            let config = ScanConfig {
                // Passive: the token is in the advertisement itself, no scan requests needed.
                active: false,
                interval: Duration::from_millis(100),
                window: Duration::from_millis(100),
                ..ScanConfig::default()
            };
            let mut scanner = Scanner::new(&mut self.central);
            self.session = Some(scanner.scan(&config).await?);
        }
        Ok(self.reports.receive().await)
    }
}

/// Beacon half.
pub struct SdcBeacon<'a> {
    peripheral: Peripheral<'a, Sdc, Pool>,
    stack: &'a Stack<'a, Sdc, Pool>,
    server: &'a Server<'a>,
}

impl node::Beacon for SdcBeacon<'_> {
    type Error = RadioError;

    async fn advertise(&mut self, adv: &[u8]) -> Result<CheckInWrite, Self::Error> {
        let params = AdvertisementParameters {
            interval_min: Duration::from_millis(100),
            interval_max: Duration::from_millis(150),
            ..AdvertisementParameters::default()
        };
        loop {
            let advertiser = self
                .peripheral
                .advertise(
                    &params,
                    Advertisement::ConnectableScannableUndirected {
                        adv_data: adv,
                        scan_data: &SCAN_DATA,
                    },
                )
                .await?;
            let conn = advertiser.accept().await?;
            let conn = conn.with_attribute_server(&self.server.server)?;
            let rssi = conn.raw().rssi(self.stack).await.unwrap_or(i8::MIN);
            let written =
                with_timeout(CHECK_IN_TIMEOUT, wait_for_check_in(&conn, self.server)).await;
            conn.raw().disconnect();
            if let Ok(Some(value)) = written {
                return Ok(CheckInWrite { rssi, value });
            }
        }
    }
}

/// Serves GATT on the connection until the token is written or the phone hangs up.
async fn wait_for_check_in(
    conn: &GattConnection<'_, '_, Pool>,
    server: &Server<'_>,
) -> Option<heapless::Vec<u8, 32>> {
    loop {
        match conn.next().await {
            GattConnectionEvent::Disconnected { .. } => return None,
            GattConnectionEvent::Gatt { event } => {
                let value = match &event {
                    GattEvent::Write(w) if w.handle() == server.check_in.token.handle => {
                        w.with_data(|_, data| heapless::Vec::from_slice(data).ok())
                    }
                    _ => None,
                };
                if let Ok(reply) = event.accept() {
                    reply.send().await;
                }
                if value.is_some() {
                    return value;
                }
            }
            _ => {}
        }
    }
}
