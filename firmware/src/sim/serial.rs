//! The simulator's serial link: a pseudo-terminal it creates (the agent opens the slave path as
//! it would a USB serial port) or an existing port. Both are non-blocking file descriptors
//! behind `embedded-io-async` halves that wait on embassy timers when the descriptor is not
//! ready, so a slow or absent reader never blocks the node's other tasks.

use std::fs::{File, OpenOptions};
use std::io::{self, ErrorKind as IoKind, Read as _, Write as _};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::string::String;

use embassy_time::{Duration, Timer};
use embedded_io_async::{ErrorKind, ErrorType, Read, Write};
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::pty::{grantpt, posix_openpt, ptsname_r, unlockpt};
use nix::sys::termios::{cfmakeraw, cfsetspeed, tcgetattr, tcsetattr, BaudRate, SetArg};

/// Poll period while the descriptor has nothing to read.
const READ_POLL: Duration = Duration::from_millis(10);
/// Retry period while the descriptor cannot take more bytes.
const WRITE_RETRY: Duration = Duration::from_millis(5);

/// A pseudo-terminal: the simulator writes the master, the agent opens [`Pty::path`].
#[derive(Debug)]
pub struct Pty {
    /// The slave's path (e.g. `/dev/pts/5`).
    pub path: PathBuf,
    master: File,
    /// Held open so the slave keeps its raw settings and the master never reads EIO while the
    /// agent is away; bytes written meanwhile wait in the pty buffer like in a UART's.
    _slave: File,
}

impl Pty {
    /// The two halves of the link.
    pub fn split(&self) -> io::Result<(SerialReader, SerialWriter)> {
        Ok((
            SerialReader(self.master.try_clone()?),
            SerialWriter(self.master.try_clone()?),
        ))
    }
}

fn nix_err(e: nix::Error) -> io::Error {
    io::Error::from(e)
}

fn set_nonblocking(fd: impl AsFd) -> io::Result<()> {
    let flags = fcntl(&fd, FcntlArg::F_GETFL).map_err(nix_err)?;
    let flags = OFlag::from_bits_truncate(flags) | OFlag::O_NONBLOCK;
    fcntl(&fd, FcntlArg::F_SETFL(flags)).map_err(nix_err)?;
    Ok(())
}

/// Creates a pseudo-terminal in raw mode.
pub fn open_pty() -> io::Result<Pty> {
    let master = posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY).map_err(nix_err)?;
    grantpt(&master).map_err(nix_err)?;
    unlockpt(&master).map_err(nix_err)?;
    let path: String = ptsname_r(&master).map_err(nix_err)?;
    let master = File::from(OwnedFd::from(master));
    let slave = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc_o_noctty())
        .open(&path)?;
    // Raw: no echo (a command echoed back would come in as garbage), no CR/LF mangling.
    let mut termios = tcgetattr(&slave).map_err(nix_err)?;
    cfmakeraw(&mut termios);
    tcsetattr(&slave, SetArg::TCSANOW, &termios).map_err(nix_err)?;
    set_nonblocking(&master)?;
    Ok(Pty {
        path: PathBuf::from(path),
        master,
        _slave: slave,
    })
}

fn libc_o_noctty() -> i32 {
    OFlag::O_NOCTTY.bits()
}

/// Opens an existing serial port (or any character device) in raw mode at `baud`.
pub fn open_serial(path: &Path, baud: u32) -> io::Result<(SerialReader, SerialWriter)> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc_o_noctty() | OFlag::O_NONBLOCK.bits())
        .open(path)?;
    let mut termios = tcgetattr(&file).map_err(nix_err)?;
    cfmakeraw(&mut termios);
    cfsetspeed(&mut termios, baud_rate(baud)?).map_err(nix_err)?;
    tcsetattr(&file, SetArg::TCSANOW, &termios).map_err(nix_err)?;
    Ok((SerialReader(file.try_clone()?), SerialWriter(file)))
}

fn baud_rate(baud: u32) -> io::Result<BaudRate> {
    Ok(match baud {
        9600 => BaudRate::B9600,
        19200 => BaudRate::B19200,
        38400 => BaudRate::B38400,
        57600 => BaudRate::B57600,
        115_200 => BaudRate::B115200,
        230_400 => BaudRate::B230400,
        460_800 => BaudRate::B460800,
        921_600 => BaudRate::B921600,
        1_000_000 => BaudRate::B1000000,
        other => {
            return Err(io::Error::new(
                IoKind::InvalidInput,
                std::format!("unsupported baud rate {other}"),
            ))
        }
    })
}

fn kind(e: &io::Error) -> ErrorKind {
    match e.kind() {
        IoKind::BrokenPipe => ErrorKind::BrokenPipe,
        IoKind::NotConnected => ErrorKind::NotConnected,
        _ => ErrorKind::Other,
    }
}

/// Receive half (agent -> node commands).
#[derive(Debug)]
pub struct SerialReader(File);

impl ErrorType for SerialReader {
    type Error = ErrorKind;
}

impl Read for SerialReader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        loop {
            match self.0.read(buf) {
                Ok(0) if !buf.is_empty() => Timer::after(READ_POLL).await,
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == IoKind::WouldBlock => Timer::after(READ_POLL).await,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                // EIO: a pty master whose slave is closed; wait for the agent to come back.
                Err(e) if e.raw_os_error() == Some(nix::libc::EIO) => {
                    Timer::after(READ_POLL * 10).await
                }
                Err(e) => return Err(kind(&e)),
            }
        }
    }
}

/// Transmit half (node -> agent frames).
#[derive(Debug)]
pub struct SerialWriter(File);

impl ErrorType for SerialWriter {
    type Error = ErrorKind;
}

impl Write for SerialWriter {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        loop {
            match self.0.write(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == IoKind::WouldBlock => Timer::after(WRITE_RETRY).await,
                Err(e) if e.kind() == IoKind::Interrupted => {}
                Err(e) => return Err(kind(&e)),
            }
        }
    }

    async fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}
