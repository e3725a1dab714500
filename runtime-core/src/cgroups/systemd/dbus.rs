//! The few calls of systemd's D-Bus API the driver needs, over `zbus`
//! (blocking on the caller's thread; no executor thread of its own).
//!
//! One connection per operation, dropped when it is done: the shim holds no
//! D-Bus state between calls. The connection goes through the system bus
//! (`Hello`, `AddMatch` and `Subscribe` for the job signal, then the call).
//! Not through systemd's own socket `/run/systemd/private`, which would save
//! the first three: systemd names itself there with its well-known name as
//! the sender of its messages, and zbus 5 panics on a sender that is not a
//! unique name (tried in the guest: an abort, which in the shim would take
//! every container of the pod down with it). Through the bus daemon every
//! sender is a unique name.
//!
//! Runs in the shim process only, on a blocking thread: never between fork
//! and exec (the helper and the init never talk D-Bus).

use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use futures_core::Stream;
use zbus::zvariant::{OwnedObjectPath, Value as ZValue};
use zbus::{Connection, MatchRule, MessageStream};

use super::properties::{Property, Value};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const SYSTEM_BUS: &str = "unix:path=/run/dbus/system_bus_socket";
/// How long a job may take (runc waits 30 s too).
const TIMEOUT: Duration = Duration::from_secs(30);

/// Why a call failed: systemd's D-Bus error name and message, or a transport error.
#[derive(Debug)]
pub enum Failure {
    Systemd { name: String, msg: String },
    Bus(String),
}

impl Failure {
    pub fn is(&self, error_name: &str) -> bool {
        matches!(self, Failure::Systemd { name, .. } if name == error_name)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Systemd { name, msg } => write!(f, "{msg} ({name})"),
            Failure::Bus(m) => f.write_str(m),
        }
    }
}

impl From<zbus::Error> for Failure {
    fn from(e: zbus::Error) -> Failure {
        match e {
            zbus::Error::MethodError(name, msg, _) => Failure::Systemd {
                name: name.to_string(),
                msg: msg.unwrap_or_default(),
            },
            other => Failure::Bus(other.to_string()),
        }
    }
}

pub type Result<T> = std::result::Result<T, Failure>;

fn zvalue(v: &Value) -> ZValue<'static> {
    match v {
        Value::Bool(b) => ZValue::from(*b),
        Value::Str(s) => ZValue::from(s.clone()),
        Value::U64(n) => ZValue::from(*n),
        Value::U32s(v) => ZValue::from(v.clone()),
        Value::Bytes(v) => ZValue::from(v.clone()),
        Value::Strs(v) => ZValue::from(v.clone()),
        Value::PathU64s(v) => ZValue::from(v.clone()),
    }
}

fn encode(props: &[Property]) -> Vec<(&'static str, ZValue<'static>)> {
    props.iter().map(|(n, v)| (*n, zvalue(v))).collect()
}

/// A connection to systemd's manager, with the `JobRemoved` signals queued
/// from before the first call (so a fast job cannot be missed).
pub struct Bus {
    conn: Connection,
    jobs: MessageStream,
}

impl Bus {
    pub fn connect() -> Result<Bus> {
        async_io::block_on(Self::connect_async())
    }

    async fn connect_async() -> Result<Bus> {
        // DBUS_SYSTEM_BUS_ADDRESS is not read: the shim's environment comes
        // from containerd, and the bus is a fixed place of the host.
        let conn = zbus::connection::Builder::address(SYSTEM_BUS)?
            .internal_executor(false)
            .method_timeout(TIMEOUT)
            .build()
            .await?;
        let rule = MatchRule::builder()
            .msg_type(zbus::message::Type::Signal)
            .interface(MANAGER)?
            .member("JobRemoved")?
            .build();
        let jobs = drive(&conn, MessageStream::for_match_rule(rule, &conn, Some(64))).await?;
        // On the bus systemd emits job signals only while some client is
        // subscribed (the subscription ends with the connection).
        drive(
            &conn,
            conn.call_method(Some(DEST), PATH, Some(MANAGER), "Subscribe", &()),
        )
        .await?;
        Ok(Bus { conn, jobs })
    }

    /// Runs `f` to completion on this thread, with the connection's tasks.
    fn run<T>(&self, f: impl Future<Output = T>) -> T {
        async_io::block_on(drive(&self.conn, f))
    }

    fn call<B>(&self, method: &str, body: &B) -> Result<zbus::Message>
    where
        B: serde::Serialize + zbus::zvariant::DynamicType,
    {
        Ok(self.run(
            self.conn
                .call_method(Some(DEST), PATH, Some(MANAGER), method, body),
        )?)
    }

    /// `StartTransientUnit(name, "replace", props, [])`: the job's path.
    pub fn start_transient(&self, name: &str, props: &[Property]) -> Result<OwnedObjectPath> {
        let aux: Vec<(&str, Vec<(&str, ZValue)>)> = Vec::new();
        let reply = self.call("StartTransientUnit", &(name, "replace", encode(props), aux))?;
        Ok(reply.body().deserialize()?)
    }

    /// `StopUnit(name, "replace")`: the job's path.
    pub fn stop(&self, name: &str) -> Result<OwnedObjectPath> {
        let reply = self.call("StopUnit", &(name, "replace"))?;
        Ok(reply.body().deserialize()?)
    }

    /// `SetUnitProperties(name, runtime=true, props)`.
    pub fn set_properties(&self, name: &str, props: &[Property]) -> Result<()> {
        self.call("SetUnitProperties", &(name, true, encode(props)))?;
        Ok(())
    }

    /// `ResetFailedUnit(name)`: forget a failed unit so its name is free.
    pub fn reset_failed(&self, name: &str) -> Result<()> {
        self.call("ResetFailedUnit", &(name,))?;
        Ok(())
    }

    /// Waits for `JobRemoved` of `job`: its result (`done`, `failed`, …).
    pub fn wait(&mut self, job: &OwnedObjectPath) -> Result<String> {
        let mut timer = async_io::Timer::after(TIMEOUT);
        let jobs = &mut self.jobs;
        let found = std::future::poll_fn(|cx| {
            loop {
                match Pin::new(&mut *jobs).poll_next(cx) {
                    Poll::Ready(Some(Ok(msg))) => {
                        let body = msg.body();
                        let Ok((_, path, _, result)) =
                            body.deserialize::<(u32, OwnedObjectPath, String, String)>()
                        else {
                            continue;
                        };
                        if &path == job {
                            return Poll::Ready(Ok(result));
                        }
                    }
                    Poll::Ready(Some(Err(e))) => return Poll::Ready(Err(Failure::from(e))),
                    Poll::Ready(None) => {
                        return Poll::Ready(Err(Failure::Bus(
                            "the connection to systemd closed while waiting for the job".into(),
                        )))
                    }
                    Poll::Pending => break,
                }
            }
            if Pin::new(&mut timer).poll(cx).is_ready() {
                return Poll::Ready(Err(Failure::Bus(format!(
                    "systemd did not finish job {} within {TIMEOUT:?}",
                    job.as_str()
                ))));
            }
            Poll::Pending
        });
        async_io::block_on(drive(&self.conn, found))
    }
}

/// Polls `f` and, while it is pending, runs the connection's own tasks (its
/// socket reader): the connection is built without zbus's executor thread,
/// so the caller's thread does that work and no thread outlives the call.
async fn drive<T>(conn: &Connection, f: impl Future<Output = T>) -> T {
    let exec = conn.executor();
    let mut f = std::pin::pin!(f);
    let mut tick: Option<Pin<Box<dyn Future<Output = ()> + '_>>> = None;
    std::future::poll_fn(move |cx| loop {
        if let Poll::Ready(v) = f.as_mut().poll(cx) {
            return Poll::Ready(v);
        }
        let t = tick.get_or_insert_with(|| Box::pin(exec.tick()));
        match t.as_mut().poll(cx) {
            // A task ran: it may have made `f` ready; poll it again.
            Poll::Ready(()) => tick = None,
            Poll::Pending => return Poll::Pending,
        }
    })
    .await
}
