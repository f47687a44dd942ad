//! A small QMP client over a unix socket.
//!
//! One reader task reads every line QEMU sends: replies go to the waiting
//! [`Qmp::execute`] call by `id`, events to a broadcast channel. Unknown
//! events are forwarded as they are (a schema-bound client that rejects them
//! would drop the connection).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;

use crate::time::Deadline;

/// How often a socket that does not exist yet is retried.
const CONNECT_RETRY: Duration = Duration::from_millis(10);
const EVENT_BACKLOG: usize = 64;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("could not connect to QMP at {path} within {waited:?}: {source}")]
    Connect {
        path: PathBuf,
        waited: Duration,
        source: std::io::Error,
    },
    #[error("QMP I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("expected the QMP greeting, got {0:?}")]
    Greeting(String),
    #[error("unexpected QMP reply: {0}")]
    Protocol(String),
    #[error("QMP command {command} failed: {class}: {desc}")]
    Command {
        command: String,
        class: String,
        desc: String,
    },
    #[error("QMP connection closed before the reply to {command}")]
    Closed { command: String },
    #[error("no reply to QMP command {command} within {waited:?}")]
    Timeout { command: String, waited: Duration },
}

/// An asynchronous event from QEMU (`SHUTDOWN`, `STOP`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct QmpEvent {
    pub name: String,
    pub data: Value,
}

/// What a reply carries before it is matched to its command.
type Reply = Result<Value, (String, String)>;

#[derive(Debug, Default)]
struct Pending {
    waiting: HashMap<u64, oneshot::Sender<Reply>>,
    /// Set once the reader stopped; later commands fail at once.
    closed: bool,
}

/// A connected, negotiated QMP session.
#[derive(Debug)]
pub struct Qmp {
    writer: OwnedWriteHalf,
    pending: Arc<Mutex<Pending>>,
    events: broadcast::Sender<QmpEvent>,
    next_id: u64,
    reader: JoinHandle<()>,
}

impl Qmp {
    /// Connects to `path`, retrying until the socket exists and accepts, then
    /// negotiates capabilities; all by `deadline`.
    pub async fn connect(path: &Path, deadline: Deadline) -> Result<Self, QmpError> {
        let stream =
            connect_when_ready(path, deadline)
                .await
                .map_err(|source| QmpError::Connect {
                    path: path.to_owned(),
                    waited: deadline.elapsed(),
                    source,
                })?;
        Self::handshake(stream, deadline).await
    }

    /// Reads the greeting and enters command mode on an open connection.
    pub async fn handshake(stream: UnixStream, deadline: Deadline) -> Result<Self, QmpError> {
        let (read_half, writer) = stream.into_split();
        let mut lines = BufReader::new(read_half);
        let mut greeting = String::new();
        let read =
            tokio::time::timeout_at(deadline.tokio_instant(), lines.read_line(&mut greeting));
        match read.await {
            Err(_) => {
                return Err(QmpError::Timeout {
                    command: "greeting".into(),
                    waited: deadline.elapsed(),
                })
            }
            Ok(read) => read?,
        };
        if serde_json::from_str::<Value>(&greeting).map_or(true, |v| v.get("QMP").is_none()) {
            return Err(QmpError::Greeting(greeting));
        }
        let pending = Arc::new(Mutex::new(Pending::default()));
        let (events, _) = broadcast::channel(EVENT_BACKLOG);
        let reader = tokio::spawn(read_replies(lines, Arc::clone(&pending), events.clone()));
        let mut qmp = Self {
            writer,
            pending,
            events,
            next_id: 0,
            reader,
        };
        qmp.execute("qmp_capabilities", None, deadline).await?;
        Ok(qmp)
    }

    /// Events from now on. A receiver that falls more than 64 events behind
    /// loses the oldest.
    pub fn subscribe(&self) -> broadcast::Receiver<QmpEvent> {
        self.events.subscribe()
    }

    /// Runs `command` with optional `arguments`; returns its `return` value.
    pub async fn execute(
        &mut self,
        command: &str,
        arguments: Option<Value>,
        deadline: Deadline,
    ) -> Result<Value, QmpError> {
        self.next_id += 1;
        let id = self.next_id;
        let (reply_to, reply) = oneshot::channel();
        {
            let mut pending = lock(&self.pending);
            if pending.closed {
                return Err(QmpError::Closed {
                    command: command.into(),
                });
            }
            pending.waiting.insert(id, reply_to);
        }
        let mut request = json!({ "execute": command, "id": id });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        let mut line = request.to_string();
        line.push('\n');
        let exchange = async {
            self.writer.write_all(line.as_bytes()).await?;
            Ok::<_, std::io::Error>(reply.await)
        };
        let outcome = tokio::time::timeout_at(deadline.tokio_instant(), exchange).await;
        if outcome.is_err() {
            lock(&self.pending).waiting.remove(&id);
        }
        match outcome {
            Err(_) => Err(QmpError::Timeout {
                command: command.into(),
                waited: deadline.elapsed(),
            }),
            Ok(Err(io)) => Err(io.into()),
            Ok(Ok(Err(_))) => Err(QmpError::Closed {
                command: command.into(),
            }),
            Ok(Ok(Ok(Ok(value)))) => Ok(value),
            Ok(Ok(Ok(Err((class, desc))))) => Err(QmpError::Command {
                command: command.into(),
                class,
                desc,
            }),
        }
    }

    /// The VM's run state: `running`, `paused`, `shutdown`, …
    pub async fn query_status(&mut self, deadline: Deadline) -> Result<String, QmpError> {
        let status = self.execute("query-status", None, deadline).await?;
        status
            .get("status")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| QmpError::Protocol(status.to_string()))
    }

    /// Presses the virtual power button (ACPI); the guest decides what to do.
    pub async fn system_powerdown(&mut self, deadline: Deadline) -> Result<(), QmpError> {
        self.execute("system_powerdown", None, deadline)
            .await
            .map(drop)
    }

    /// Asks QEMU to exit at once. QEMU may close the connection before its
    /// reply arrives, or be gone already; both count as success.
    pub async fn quit(&mut self, deadline: Deadline) -> Result<(), QmpError> {
        match self.execute("quit", None, deadline).await {
            Ok(_) | Err(QmpError::Closed { .. }) => Ok(()),
            Err(QmpError::Io(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(error) => Err(error),
        }
    }
}

/// Locks the pending table; a panic elsewhere while holding it leaves a
/// table that is still consistent (single inserts and removes).
fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(|poison| poison.into_inner())
}

impl Drop for Qmp {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// Connects to a unix socket, retrying while it does not exist or refuses,
/// until `deadline`; the error is the last one seen.
pub(crate) async fn connect_when_ready(
    path: &Path,
    deadline: Deadline,
) -> std::io::Result<UnixStream> {
    loop {
        match UnixStream::connect(path).await {
            Ok(stream) => return Ok(stream),
            Err(error) if deadline.is_expired() => return Err(error),
            Err(_) => tokio::time::sleep(CONNECT_RETRY.min(deadline.remaining())).await,
        }
    }
}

/// The reader task: routes replies by id and forwards events until the
/// connection ends or QEMU sends something that is not QMP.
async fn read_replies(
    mut lines: BufReader<OwnedReadHalf>,
    pending: Arc<Mutex<Pending>>,
    events: broadcast::Sender<QmpEvent>,
) {
    let mut line = String::new();
    loop {
        line.clear();
        match lines.read_line(&mut line).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let Ok(Value::Object(message)) = serde_json::from_str::<Value>(&line) else {
            break;
        };
        if let Some(name) = message.get("event").and_then(Value::as_str) {
            let data = message.get("data").cloned().unwrap_or(Value::Null);
            // No subscriber is fine: nobody is interested in events yet.
            let _ = events.send(QmpEvent {
                name: name.to_owned(),
                data,
            });
            continue;
        }
        let Some(id) = message.get("id").and_then(Value::as_u64) else {
            continue;
        };
        let reply = match message.get("error") {
            Some(error) => Err((text_field(error, "class"), text_field(error, "desc"))),
            None => Ok(message.get("return").cloned().unwrap_or(Value::Null)),
        };
        let waiting = lock(&pending).waiting.remove(&id);
        if let Some(reply_to) = waiting {
            // The caller may have timed out and gone; nothing to do then.
            let _ = reply_to.send(reply);
        }
    }
    // Dropping the senders tells every waiting command the connection closed.
    let mut pending = lock(&pending);
    pending.closed = true;
    pending.waiting.clear();
}

fn text_field(object: &Value, key: &str) -> String {
    object
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}
