//! Publishes task events to containerd, in order, over its ttrpc events service.
//!
//! One queue and one sender task per shim: events leave in exactly the order
//! they were queued, and a failed forward is retried (containerd may be
//! restarting) before the next event is sent.

use std::time::Duration;

use containerd_shim_protos::events::task::{
    TaskCreate, TaskDelete, TaskExecAdded, TaskExecStarted, TaskExit, TaskOOM, TaskPaused,
    TaskResumed, TaskStart,
};
use containerd_shim_protos::protobuf::well_known_types::any::Any;
use containerd_shim_protos::protobuf::well_known_types::timestamp::Timestamp;
use containerd_shim_protos::protobuf::{Message, MessageField};
use containerd_shim_protos::shim::event::Envelope;
use containerd_shim_protos::shim::events::ForwardRequest;
use containerd_shim_protos::shim_async::EventsClient;
use containerd_shim_protos::topics;
use tokio::sync::mpsc;

const ATTEMPTS: u32 = 10;

/// The events this shim sends.
pub enum Event {
    Create(TaskCreate),
    Start(TaskStart),
    Exit(TaskExit),
    Delete(TaskDelete),
    ExecAdded(TaskExecAdded),
    ExecStarted(TaskExecStarted),
    Paused(TaskPaused),
    Resumed(TaskResumed),
    Oom(TaskOOM),
}

impl Event {
    fn topic_and_any(self) -> (&'static str, Any) {
        match self {
            Event::Create(e) => (topics::TASK_CREATE_EVENT_TOPIC, any(&e, "TaskCreate")),
            Event::Start(e) => (topics::TASK_START_EVENT_TOPIC, any(&e, "TaskStart")),
            Event::Exit(e) => (topics::TASK_EXIT_EVENT_TOPIC, any(&e, "TaskExit")),
            Event::Delete(e) => (topics::TASK_DELETE_EVENT_TOPIC, any(&e, "TaskDelete")),
            Event::ExecAdded(e) => (
                topics::TASK_EXEC_ADDED_EVENT_TOPIC,
                any(&e, "TaskExecAdded"),
            ),
            Event::ExecStarted(e) => (
                topics::TASK_EXEC_STARTED_EVENT_TOPIC,
                any(&e, "TaskExecStarted"),
            ),
            Event::Paused(e) => (topics::TASK_PAUSED_EVENT_TOPIC, any(&e, "TaskPaused")),
            Event::Resumed(e) => (topics::TASK_RESUMED_EVENT_TOPIC, any(&e, "TaskResumed")),
            Event::Oom(e) => (topics::TASK_OOM_EVENT_TOPIC, any(&e, "TaskOOM")),
        }
    }
}

/// containerd's typeurl registry knows bare message names (no `type.googleapis.com/`).
/// Named by hand: asking protobuf for the descriptor would build its whole
/// reflection pool, resident for the shim's life, to read one string.
fn any<M: Message>(m: &M, name: &str) -> Any {
    Any {
        type_url: format!("containerd.events.{name}"),
        value: m.write_to_bytes().unwrap_or_default(),
        ..Default::default()
    }
}

pub fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp {
        seconds: d.as_secs() as i64,
        nanos: d.subsec_nanos() as i32,
        ..Default::default()
    }
}

#[derive(Clone)]
pub struct Publisher {
    tx: mpsc::UnboundedSender<(Timestamp, Event)>,
}

impl Publisher {
    /// Starts the sender task; `ttrpc_address` is containerd's (from `TTRPC_ADDRESS`).
    pub fn spawn(ttrpc_address: String, namespace: String) -> Publisher {
        let (tx, mut rx) = mpsc::unbounded_channel::<(Timestamp, Event)>();
        tokio::spawn(async move {
            let mut client: Option<EventsClient> = None;
            while let Some((ts, event)) = rx.recv().await {
                let (topic, any) = event.topic_and_any();
                let req = ForwardRequest {
                    envelope: MessageField::some(Envelope {
                        timestamp: MessageField::some(ts),
                        namespace: namespace.clone(),
                        topic: topic.to_string(),
                        event: MessageField::some(any),
                        ..Default::default()
                    }),
                    ..Default::default()
                };
                forward(&ttrpc_address, &mut client, &req, topic).await;
            }
        });
        Publisher { tx }
    }

    pub fn publish(&self, event: Event) {
        let _ = self.tx.send((now(), event));
    }
}

async fn forward(addr: &str, client: &mut Option<EventsClient>, req: &ForwardRequest, topic: &str) {
    for attempt in 0..ATTEMPTS {
        if client.is_none() {
            match ttrpc::r#async::Client::connect(&format!(
                "unix://{}",
                addr.trim_start_matches("unix://")
            ))
            .await
            {
                Ok(c) => *client = Some(EventsClient::new(c)),
                Err(e) => log::warn!("connect to containerd events at {addr}: {e}"),
            }
        }
        if let Some(c) = client.as_ref() {
            match c
                .forward(ttrpc::context::with_timeout(5_000_000_000), req)
                .await
            {
                Ok(_) => return,
                Err(e) => {
                    log::warn!("publish {topic} (attempt {}): {e}", attempt + 1);
                    *client = None;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(50 << attempt.min(6))).await;
    }
    log::error!("dropped event {topic} after {ATTEMPTS} attempts");
}
