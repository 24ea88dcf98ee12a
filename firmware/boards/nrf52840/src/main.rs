//! Loyalty Edge zone sensor node on an nRF52840 (pinout of the nRF52840-DK).
//!
//! Wiring only: bring up the clocks, the BLE controller (nrf-sdc) and host (trouble-host), the
//! UART to the agent, then hand everything to `loyalty_firmware::node::run`. On a reboot command
//! from the agent, reset the chip.
//!
//! Serial link: UARTE0 at 115200 8N1, TX P0.06, RX P0.08 (the DK's J-Link virtual COM port, so
//! the agent sees `/dev/ttyACM0` over the same USB cable used for flashing).
#![no_std]
#![no_main]

mod radio;

use core::cell::Cell;

use embassy_executor::Spawner;
use embassy_futures::select::{select, Either};
use embassy_nrf::buffered_uarte::{self, BufferedUarte};
use embassy_nrf::peripherals::{RNG, UARTE0};
use embassy_nrf::{bind_interrupts, pac, rng, uarte};
use embassy_time::Duration;
use loyalty_firmware::ibeacon::IBeacon;
use loyalty_firmware::node::{self, NodeConfig};
use nrf_sdc::mpsl::MultiprotocolServiceLayer;
use nrf_sdc::{self as sdc, mpsl};
use panic_reset as _;
use static_cell::StaticCell;
use trouble_host::prelude::*;

use crate::radio::{Pool, ReportSink, Reports, SdcRadio, Server};

bind_interrupts!(struct Irqs {
    RNG => rng::InterruptHandler<RNG>;
    EGU0_SWI0 => mpsl::LowPrioInterruptHandler;
    CLOCK_POWER => mpsl::ClockInterruptHandler;
    RADIO => mpsl::HighPrioInterruptHandler;
    TIMER0 => mpsl::HighPrioInterruptHandler;
    RTC0 => mpsl::HighPrioInterruptHandler;
    UARTE0 => buffered_uarte::InterruptHandler<UARTE0>;
});

/// The store's iBeacon region. Per-deployment values: change them here (or derive from FICR)
/// before flashing a store's nodes. The UUID is the retailer's, the major the store.
const BEACON_UUID: [u8; 16] = *b"LoyaltyEdgeDemo!";
const BEACON_MAJOR: u16 = 1;
/// Measured power at 1 m of the node's own beacon, for iOS ranging (replace after calibration).
const BEACON_MEASURED_POWER: i8 = -59;

/// Controller memory: enough for one peripheral link plus scanning and advertising
/// (`sdc::Builder::required_memory` gives the exact figure; build fails at boot if short).
const SDC_MEM: usize = 8192;
/// One connection (a phone checking in), signalling + ATT channels.
const CONNECTIONS: usize = 1;
const L2CAP_CHANNELS: usize = 2;

#[embassy_executor::task]
async fn mpsl_task(mpsl: &'static MultiprotocolServiceLayer<'static>) -> ! {
    mpsl.run().await
}

fn build_sdc<'d, const N: usize>(
    p: sdc::Peripherals<'d>,
    rng: &'d mut rng::Rng<'static, embassy_nrf::mode::Async>,
    mpsl: &'d MultiprotocolServiceLayer,
    mem: &'d mut sdc::Mem<N>,
) -> Result<sdc::SoftdeviceController<'d>, sdc::Error> {
    sdc::Builder::new()?
        .support_scan()
        .support_adv()
        .support_peripheral()
        .peripheral_count(1)?
        .buffer_cfg(Pool::MTU as u16, Pool::MTU as u16, 2, 2)?
        .build(p, rng, mpsl, mem)
}

/// FICR DEVICEID: 64 bits unique per chip, stable across flashing.
fn device_id() -> u64 {
    let ficr = pac::FICR;
    (u64::from(ficr.deviceid(1).read()) << 32) | u64::from(ficr.deviceid(0).read())
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_nrf::init(Default::default());

    let mpsl_p =
        mpsl::Peripherals::new(p.RTC0, p.TIMER0, p.TEMP, p.PPI_CH19, p.PPI_CH30, p.PPI_CH31);
    let lfclk_cfg = mpsl::raw::mpsl_clock_lfclk_cfg_t {
        source: mpsl::raw::MPSL_CLOCK_LF_SRC_RC as u8,
        rc_ctiv: mpsl::raw::MPSL_RECOMMENDED_RC_CTIV as u8,
        rc_temp_ctiv: mpsl::raw::MPSL_RECOMMENDED_RC_TEMP_CTIV as u8,
        accuracy_ppm: mpsl::raw::MPSL_DEFAULT_CLOCK_ACCURACY_PPM as u16,
        skip_wait_lfclk_started: mpsl::raw::MPSL_DEFAULT_SKIP_WAIT_LFCLK_STARTED != 0,
    };
    static MPSL: StaticCell<MultiprotocolServiceLayer> = StaticCell::new();
    let Ok(mpsl) = MultiprotocolServiceLayer::new(mpsl_p, Irqs, lfclk_cfg) else {
        // Nothing works without the MPSL; a reset is the only retry there is.
        cortex_m::peripheral::SCB::sys_reset();
    };
    let mpsl = MPSL.init(mpsl);
    spawner.spawn(mpsl_task(mpsl).expect("mpsl task spawns once"));

    let sdc_p = sdc::Peripherals::new(
        p.PPI_CH17, p.PPI_CH18, p.PPI_CH20, p.PPI_CH21, p.PPI_CH22, p.PPI_CH23, p.PPI_CH24,
        p.PPI_CH25, p.PPI_CH26, p.PPI_CH27, p.PPI_CH28, p.PPI_CH29,
    );
    static RNG_CELL: StaticCell<rng::Rng<'static, embassy_nrf::mode::Async>> = StaticCell::new();
    let rng = RNG_CELL.init(rng::Rng::new(p.RNG, Irqs));
    static SDC_MEM_CELL: StaticCell<sdc::Mem<SDC_MEM>> = StaticCell::new();
    let sdc_mem = SDC_MEM_CELL.init(sdc::Mem::new());
    let Ok(controller) = build_sdc(sdc_p, rng, mpsl, sdc_mem) else {
        cortex_m::peripheral::SCB::sys_reset();
    };

    let mut uart_config = uarte::Config::default();
    uart_config.baudrate = uarte::Baudrate::Baud115200;
    static RX_BUF: StaticCell<[u8; 256]> = StaticCell::new();
    static TX_BUF: StaticCell<[u8; 1024]> = StaticCell::new();
    let uart = BufferedUarte::new(
        p.UARTE0,
        p.TIMER1,
        p.PPI_CH0,
        p.PPI_CH1,
        p.PPI_GROUP0,
        p.P0_08,
        p.P0_06,
        Irqs,
        uart_config,
        RX_BUF.init([0; 256]),
        TX_BUF.init([0; 1024]),
    );
    let (rx, tx) = uart.split();

    let node_id = device_id();
    static RESOURCES: StaticCell<HostResources<Pool, CONNECTIONS, L2CAP_CHANNELS>> =
        StaticCell::new();
    let resources = RESOURCES.init(HostResources::new());
    // Static random address from the chip id (top two bits set, as the spec requires).
    let mut addr = [0u8; 6];
    addr.copy_from_slice(&node_id.to_le_bytes()[..6]);
    addr[5] |= 0xC0;
    // Statics: the stack, server and report channel are borrowed for 'static by the radio
    // halves (trouble's stack lifetime is invariant), and they live until reset anyway.
    static STACK: StaticCell<Stack<'static, radio::Sdc, Pool>> = StaticCell::new();
    let stack = STACK.init(
        trouble_host::new(controller, resources)
            .set_random_address(Address::random(addr))
            .build(),
    );
    static SERVER: StaticCell<Server<'static>> = StaticCell::new();
    let Ok(server) = Server::new_with_config(GapConfig::Peripheral(PeripheralConfig {
        name: "LoyaltyEdge",
        appearance: &appearance::UNKNOWN,
    })) else {
        cortex_m::peripheral::SCB::sys_reset();
    };
    let server = SERVER.init(server);
    static REPORTS: StaticCell<Reports> = StaticCell::new();
    let reports = REPORTS.init(Reports::new());

    let sink = ReportSink {
        reports,
        overflow: Cell::new(0),
    };
    let radio = SdcRadio {
        stack,
        server,
        reports,
    };
    let mut config = NodeConfig::new(
        node_id,
        "nrf52840-dk",
        IBeacon {
            uuid: BEACON_UUID,
            major: BEACON_MAJOR,
            minor: (node_id & 0xFFFF) as u16,
            measured_power: BEACON_MEASURED_POWER,
        },
    );
    config.report_interval = Duration::from_secs(1);

    let mut runner = stack.runner();
    // The host runner and the node run side by side; the node returns only to reboot, and a
    // host error is unrecoverable without a reset too.
    let _ = match select(
        runner.run_with_handler(&sink),
        node::run(radio, tx, rx, config),
    )
    .await
    {
        Either::First(host_result) => host_result.is_ok(),
        Either::Second(_exit) => true,
    };
    cortex_m::peripheral::SCB::sys_reset();
}
