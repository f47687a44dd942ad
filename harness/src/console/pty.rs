//! A local shell on a pseudo-terminal, as a byte stream for [`Console`].
//!
//! The harness drives guests through QEMU's serial port; this is the same
//! engine against a shell on this machine, for the engine's own tests and
//! its round-trip benchmark.
//!
//! [`Console`]: super::Console

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use nix::fcntl::{fcntl, FcntlArg, OFlag};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::unix::pipe;
use tokio::process::Command;

use crate::process::ChildProcess;
use crate::time::Deadline;

/// The master side of a pty, readable and writable under tokio.
///
/// tokio's pipe ends do plain `read(2)` and `write(2)` on a non-blocking fd
/// registered with its reactor, which is all a pty master needs; they take
/// an `OwnedFd` without `unsafe` (unlike `AsyncFd`). Reading and writing use
/// two fds on the same open file, so neither waits for the other.
#[derive(Debug)]
pub struct PtyStream {
    reader: pipe::Receiver,
    writer: pipe::Sender,
}

impl PtyStream {
    /// Wraps a pty master; must be called within a tokio runtime.
    pub fn new(master: OwnedFd) -> io::Result<Self> {
        let flags = OFlag::from_bits_truncate(fcntl(master.as_raw_fd(), FcntlArg::F_GETFL)?);
        fcntl(
            master.as_raw_fd(),
            FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK),
        )?;
        Ok(Self {
            writer: pipe::Sender::from_owned_fd_unchecked(master.try_clone()?)?,
            reader: pipe::Receiver::from_owned_fd_unchecked(master)?,
        })
    }
}

impl AsyncRead for PtyStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match ready!(Pin::new(&mut self.reader).poll_read(cx, buf)) {
            // Linux reports EIO on the master once every slave fd is
            // closed: the terminal hung up, which is the stream's end.
            Err(error) if error.raw_os_error() == Some(libc::EIO) => Poll::Ready(Ok(())),
            read => Poll::Ready(read),
        }
    }
}

impl AsyncWrite for PtyStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.writer).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.writer).poll_shutdown(cx)
    }
}

/// A shell running on this machine with a fresh pty as its controlling
/// terminal, so Ctrl-C on the console interrupts its foreground job as it
/// would on the guest's. Started through the process door: killed with its
/// whole group when dropped.
#[derive(Debug)]
pub struct LocalShell {
    child: ChildProcess,
}

impl LocalShell {
    /// Starts `program` with `args` (say `sh -i`) as a session leader on a new
    /// pty, and returns it with the pty's master side. Must be called within
    /// a tokio runtime.
    pub fn spawn(program: &str, args: &[&str]) -> io::Result<(Self, PtyStream)> {
        let pty = nix::pty::openpty(None, None)?;
        let mut command = Command::new(program);
        command.args(args);
        let child = ChildProcess::spawn_on_terminal(command, pty.slave)?;
        Ok((Self { child }, PtyStream::new(pty.master)?))
    }

    /// Kills the shell (and whatever it started) and waits for it to exit.
    pub async fn kill(&mut self) -> io::Result<()> {
        self.child.kill_group()?;
        self.child
            .wait_with_deadline(Deadline::after(KILL_GRACE))
            .await
            .map(drop)
            .map_err(io::Error::other)
    }
}

/// SIGKILL is not refused: a shell that has not exited this long after it
/// is an error of the machine, not a wait worth making longer.
const KILL_GRACE: Duration = Duration::from_secs(5);
