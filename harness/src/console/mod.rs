//! The expect engine over a serial console.
//!
//! One reader task per console always drains the stream (a guest never blocks
//! on a full serial buffer), appends the raw bytes to the transcript file and
//! decodes them into a plain-text [view](view::View) that waiters search from
//! a read cursor. Waiters are woken through a `watch` channel as bytes arrive,
//! never by polling, and fail at once when the stream ends.

mod frame;
pub mod pty;
mod readable;
mod view;

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use regex::Regex;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

use crate::time::{format_duration, Deadline};
use frame::Frame;
use readable::{readable, TypedCommands};
use view::View;

/// Lines of console output a failure shows.
pub const TAIL_LINES: usize = 20;
/// How often [`Console::wait_for_shell`] retypes its setup line while the
/// guest's shell may not exist yet.
const SHELL_RETRY: Duration = Duration::from_millis(500);
/// Budget of each attempt to get the shell back after a command timed out.
const RECOVERY_ATTEMPT: Duration = Duration::from_secs(1);
const RECOVERY_ATTEMPTS: usize = 3;
const CTRL_C: &[u8] = b"\x03";

/// Why a console operation failed. Each variant says what was awaited and
/// shows the last lines of the console.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// The deadline passed first; `waited` is the time since the deadline
    /// was set.
    #[error("timed out after {} waiting for {expected}{}", format_duration(*.waited), Tail(.tail))]
    Timeout {
        expected: String,
        waited: Duration,
        tail: Vec<String>,
    },
    /// The stream ended or broke (the guest powered off, QEMU died, the
    /// transcript could not be written).
    #[error("console closed ({reason}) while waiting for {expected}{}", Tail(.tail))]
    Closed {
        expected: String,
        reason: String,
        tail: Vec<String>,
    },
    /// The transcript file could not be opened.
    #[error("console I/O failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Renders the last lines of a console under an error message.
struct Tail<'a>(&'a [String]);

impl fmt::Display for Tail<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "; the console printed nothing");
        }
        write!(f, "; last lines on the console:")?;
        self.0.iter().try_for_each(|line| write!(f, "\n  | {line}"))
    }
}

/// What [`Console::expect`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Match {
    /// The view's text between the previous cursor and the match.
    pub before: String,
    /// The matched text.
    pub matched: String,
}

/// What a command run with [`Console::run`] printed, and its exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutput {
    /// Everything the command printed (stdout and stderr), `\r` and escape
    /// sequences removed.
    pub output: String,
    pub exit: i32,
}

/// A command typed by [`Console::start_command`], not yet waited for.
#[derive(Debug)]
#[must_use = "a started command holds the console until `finish` collects it"]
pub struct PendingCommand {
    frame: Frame,
    command: String,
}

/// What the reader task has seen so far.
#[derive(Debug, Default)]
struct Received {
    view: View,
    /// Why the stream ended, once it has.
    closed: Option<String>,
}

/// A shell on a byte stream (a guest's serial port, or a local pty).
pub struct Console {
    writer: Box<dyn AsyncWrite + Send + Unpin>,
    received: watch::Receiver<Received>,
    /// Byte offset into the view up to which output has been consumed.
    cursor: usize,
    /// What was typed in each frame, so the tail can show it.
    typed: TypedCommands,
    reader: JoinHandle<()>,
}

impl fmt::Debug for Console {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Console")
            .field("cursor", &self.cursor)
            .finish_non_exhaustive()
    }
}

impl Drop for Console {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Console {
    /// Starts reading `stream`, appending its raw bytes to the file at
    /// `transcript_path` (created if missing). Must be called within a tokio
    /// runtime.
    pub fn start<S>(stream: S, transcript_path: &Path) -> Result<Self, ConsoleError>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let transcript = OpenOptions::new()
            .create(true)
            .append(true)
            .open(transcript_path)?;
        let (reader, writer) = tokio::io::split(stream);
        let (sender, received) = watch::channel(Received::default());
        Ok(Self {
            writer: Box::new(writer),
            received,
            cursor: 0,
            typed: TypedCommands::default(),
            reader: tokio::spawn(drain(reader, transcript, sender)),
        })
    }

    /// Sends raw bytes (keys, Ctrl-C…) to the console.
    pub async fn send(&mut self, bytes: &[u8], deadline: Deadline) -> Result<(), ConsoleError> {
        let expected = || format!("the console to take {} bytes of input", bytes.len());
        let closed = self.received.borrow().closed.clone();
        if let Some(reason) = closed {
            return Err(self.closed(expected(), reason));
        }
        let write = async {
            self.writer.write_all(bytes).await?;
            self.writer.flush().await
        };
        match timeout_at(deadline.tokio_instant(), write).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(self.closed(expected(), format!("write failed: {error}"))),
            Err(_elapsed) => Err(self.timed_out(expected(), &deadline)),
        }
    }

    /// Types `line` followed by a newline.
    pub async fn send_line(&mut self, line: &str, deadline: Deadline) -> Result<(), ConsoleError> {
        self.send(format!("{line}\n").as_bytes(), deadline).await
    }

    /// Waits for `pattern` in the view after the cursor and moves the cursor
    /// past the match; what lay between the old cursor and the match comes
    /// back in [`Match::before`]. A pattern that can match a prefix of what
    /// is still arriving (`\d+`) matches as soon as that prefix is there.
    pub async fn expect(
        &mut self,
        pattern: &Regex,
        deadline: Deadline,
    ) -> Result<Match, ConsoleError> {
        let expected = format!("output matching /{pattern}/");
        let found = self
            .wait_until(deadline.tokio_instant(), &expected, |text| {
                pattern.find(text).map(|m| {
                    let found = Match {
                        before: text[..m.start()].to_owned(),
                        matched: m.as_str().to_owned(),
                    };
                    (m.end(), found)
                })
            })
            .await?;
        found.ok_or_else(|| self.timed_out(expected, &deadline))
    }

    /// First contact with a freshly booted guest: retypes the shell setup
    /// line (echo off, empty prompts, wide columns, kernel messages off the
    /// console) until the shell runs it and prints its marker.
    pub async fn wait_for_shell(&mut self, deadline: Deadline) -> Result<(), ConsoleError> {
        let frame = Frame::new();
        let marker = frame.ready_marker();
        let expected = format!(
            "a shell on the console (setup marker {})",
            marker.trim_end()
        );
        loop {
            self.send(frame.shell_setup_text().as_bytes(), deadline)
                .await?;
            let attempt_until = (Instant::now() + SHELL_RETRY).min(deadline.tokio_instant());
            let found = self
                .wait_until(attempt_until, &expected, |text| {
                    text.find(&marker).map(|at| (at + marker.len(), ()))
                })
                .await?;
            if found.is_some() {
                return Ok(());
            }
            if deadline.is_expired() {
                return Err(self.timed_out(expected, &deadline));
            }
        }
    }

    /// Runs one command line in the shell set up by [`Self::wait_for_shell`]
    /// and returns its output and exit status. On the deadline the command
    /// is interrupted with Ctrl-C, so the shell serves the next command
    /// (this needs the console to be the shell's controlling terminal).
    pub async fn run(
        &mut self,
        command: &str,
        deadline: Deadline,
    ) -> Result<CommandOutput, ConsoleError> {
        let pending = self.start_command(command, deadline).await?;
        self.finish(pending, deadline).await
    }

    /// Types `command` in its frame and returns without waiting: the command
    /// runs in the foreground of the guest's shell (a listener, say) while
    /// labcheck does other things. Nothing else may be typed into this
    /// console until [`Self::finish`] collected it.
    pub async fn start_command(
        &mut self,
        command: &str,
        deadline: Deadline,
    ) -> Result<PendingCommand, ConsoleError> {
        let frame = Frame::new();
        self.typed.record(frame.nonce(), command);
        self.send(frame.command_text(command).as_bytes(), deadline)
            .await?;
        Ok(PendingCommand {
            frame,
            command: command.to_owned(),
        })
    }

    /// Waits for a command started by [`Self::start_command`] to end; on
    /// the deadline it is interrupted, as in [`Self::run`].
    pub async fn finish(
        &mut self,
        pending: PendingCommand,
        deadline: Deadline,
    ) -> Result<CommandOutput, ConsoleError> {
        match self.reply(&pending, deadline).await? {
            Some(output) => Ok(output),
            None => {
                // The tail is taken before recovery adds its own frames.
                let timed_out = self.timed_out(pending.command, &deadline);
                self.recover().await;
                Err(timed_out)
            }
        }
    }

    /// The last `n` lines of the view, for failure messages.
    /// labcheck's frames shown as the commands typed (see [`readable`]).
    pub fn tail(&self, n: usize) -> Vec<String> {
        let lines = readable(&self.received.borrow().view.tail(n), &self.typed);
        lines[lines.len().saturating_sub(n)..].to_vec()
    }

    /// Waits for the framed reply of a started command; `None` when the
    /// deadline passes first.
    async fn reply(
        &mut self,
        pending: &PendingCommand,
        deadline: Deadline,
    ) -> Result<Option<CommandOutput>, ConsoleError> {
        let frame = &pending.frame;
        self.wait_until(deadline.tokio_instant(), &pending.command, |text| {
            frame.find_reply(text).map(|reply| {
                let output = CommandOutput {
                    output: reply.output.to_owned(),
                    exit: reply.exit,
                };
                (reply.end, output)
            })
        })
        .await
    }

    /// Interrupts whatever runs and waits until the shell answers a no-op
    /// command again (at most `RECOVERY_ATTEMPTS` seconds past the caller's
    /// deadline). Ctrl-C is repeated because a command killed by it may still
    /// read the line typed just after it. Failures are not reported: the
    /// caller's error is the timeout that brought us here, and a closed or
    /// stuck console shows in the next call.
    async fn recover(&mut self) {
        for _ in 0..RECOVERY_ATTEMPTS {
            let attempt = Deadline::after(RECOVERY_ATTEMPT);
            if self.send(CTRL_C, attempt).await.is_err() {
                return;
            }
            let Ok(pending) = self.start_command(":", attempt).await else {
                return;
            };
            if !matches!(self.reply(&pending, attempt).await, Ok(None)) {
                return;
            }
        }
    }

    /// Waits until `find` matches the view after the cursor, then moves the
    /// cursor to the offset it returns (relative to the searched text).
    /// `Ok(None)` when `until` passes first.
    async fn wait_until<T>(
        &mut self,
        until: Instant,
        expected: &str,
        mut find: impl FnMut(&str) -> Option<(usize, T)>,
    ) -> Result<Option<T>, ConsoleError> {
        let cursor = &mut self.cursor;
        let received = &mut self.received;
        let search = async {
            loop {
                {
                    let seen = received.borrow_and_update();
                    if let Some((end, found)) = find(seen.view.after(*cursor)) {
                        *cursor += end;
                        return Ok(found);
                    }
                    if let Some(reason) = &seen.closed {
                        return Err(reason.clone());
                    }
                }
                if received.changed().await.is_err() {
                    return Err("console reader stopped".to_owned());
                }
            }
        };
        match timeout_at(until, search).await {
            Ok(Ok(found)) => Ok(Some(found)),
            Ok(Err(reason)) => Err(self.closed(expected.to_owned(), reason)),
            Err(_elapsed) => Ok(None),
        }
    }

    fn timed_out(&self, expected: String, deadline: &Deadline) -> ConsoleError {
        ConsoleError::Timeout {
            expected,
            waited: deadline.elapsed(),
            tail: self.tail(TAIL_LINES),
        }
    }

    fn closed(&self, expected: String, reason: String) -> ConsoleError {
        ConsoleError::Closed {
            expected,
            reason,
            tail: self.tail(TAIL_LINES),
        }
    }
}

/// The reader task: drains `stream` into the transcript and the view until
/// the stream ends, then records why.
async fn drain<R>(mut stream: R, mut transcript: File, sender: watch::Sender<Received>)
where
    R: AsyncRead + Unpin,
{
    let mut buffer = vec![0; 8192];
    let reason = loop {
        let chunk = match stream.read(&mut buffer).await {
            Ok(0) => break "end of stream".to_owned(),
            Ok(n) => &buffer[..n],
            Err(error) => break format!("read failed: {error}"),
        };
        // The transcript first, so whatever a waiter has seen is already
        // there; unbuffered, so it holds every byte even if the harness dies
        // (a small write to the page cache does not stall the runtime).
        let recorded = transcript.write_all(chunk);
        sender.send_modify(|received| received.view.push(chunk));
        if let Err(error) = recorded {
            break format!("transcript write failed: {error}");
        }
    };
    sender.send_modify(|received| received.closed = Some(reason));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_message_shows_expected_waited_and_tail() {
        let error = ConsoleError::Timeout {
            expected: "ping -c 3 10.0.0.2".to_owned(),
            waited: Duration::from_millis(1500),
            tail: vec![
                "PING 10.0.0.2".to_owned(),
                String::new(),
                "3 packets".to_owned(),
            ],
        };
        assert_eq!(
            error.to_string(),
            "timed out after 1.5s waiting for ping -c 3 10.0.0.2; last lines on the console:\n  \
             | PING 10.0.0.2\n  | \n  | 3 packets"
        );
    }

    #[test]
    fn closed_message_says_why_and_when_nothing_was_printed() {
        let error = ConsoleError::Closed {
            expected: "exit 0".to_owned(),
            reason: "end of stream".to_owned(),
            tail: vec![],
        };
        assert_eq!(
            error.to_string(),
            "console closed (end of stream) while waiting for exit 0; the console printed nothing"
        );
    }
}
