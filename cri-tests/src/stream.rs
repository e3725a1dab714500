//! Streaming exec through the CRI streaming server: `Exec` returns a URL on containerd's
//! streaming server, which speaks the kubelet's remotecommand protocol. We use its
//! WebSocket form (`v4.channel.k8s.io`: every binary message starts with a channel byte,
//! 0 stdin, 1 stdout, 2 stderr, 3 error/status JSON, 4 terminal size JSON), the one the
//! API server's proxy uses; the kubelet itself speaks SPDY.

use std::io::ErrorKind;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

pub struct ExecStream {
    ws: WebSocket<TcpStream>,
    /// Everything read from stdout (channel 1) so far.
    pub stdout: Vec<u8>,
    /// The status JSON from channel 3, once the process ended.
    pub status: Option<String>,
    closed: bool,
}

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;

impl ExecStream {
    /// Opens the streaming URL that `Exec` returned (`http://127.0.0.1:PORT/exec/TOKEN`).
    pub fn open(url: &str) -> ExecStream {
        let ws_url = url.replacen("http://", "ws://", 1);
        let mut req = ws_url.as_str().into_client_request().unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v4.channel.k8s.io".parse().unwrap(),
        );
        let authority = ws_url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let tcp = TcpStream::connect(&authority)
            .unwrap_or_else(|e| panic!("connect to the streaming server {authority}: {e}"));
        tcp.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let (ws, resp) = tungstenite::client(req, tcp)
            .unwrap_or_else(|e| panic!("WebSocket handshake with {url}: {e}"));
        let proto = resp.headers().get("Sec-WebSocket-Protocol");
        assert_eq!(
            proto.and_then(|p| p.to_str().ok()),
            Some("v4.channel.k8s.io"),
            "the streaming server chose no channel protocol"
        );
        ExecStream {
            ws,
            stdout: Vec::new(),
            status: None,
            closed: false,
        }
    }

    fn send(&mut self, channel: u8, data: &[u8]) {
        let mut m = vec![channel];
        m.extend_from_slice(data);
        self.ws.send(Message::binary(m)).unwrap();
    }

    pub fn stdin(&mut self, data: &str) {
        self.send(STDIN, data.as_bytes());
    }

    /// Sets the terminal size, as `kubectl exec -t` does when the window changes.
    pub fn resize(&mut self, cols: u16, rows: u16) {
        let size = serde_json::json!({"Width": cols, "Height": rows}).to_string();
        self.send(RESIZE, size.as_bytes());
    }

    /// Reads one message if one arrives within the socket's read timeout.
    fn read_once(&mut self) {
        match self.ws.read() {
            Ok(Message::Binary(b)) if !b.is_empty() => match b[0] {
                STDOUT | STDERR => self.stdout.extend_from_slice(&b[1..]),
                ERROR if b.len() > 1 => {
                    self.status = Some(String::from_utf8_lossy(&b[1..]).into_owned())
                }
                _ => {}
            },
            Ok(Message::Close(_)) => self.closed = true,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e))
                if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                self.closed = true
            }
            Err(e) => panic!("exec stream: {e}"),
        }
    }

    /// Reads until stdout contains `needle`; the output so far.
    pub fn read_until(&mut self, needle: &str, timeout: Duration) -> String {
        let start = Instant::now();
        loop {
            let out = String::from_utf8_lossy(&self.stdout).into_owned();
            if out.contains(needle) {
                return out;
            }
            assert!(
                !self.closed && start.elapsed() < timeout,
                "no {needle:?} on the exec stream after {:?}; got {out:?}",
                start.elapsed()
            );
            self.read_once();
        }
    }

    /// Reads whatever arrives during `d`; the output that arrived.
    pub fn read_for(&mut self, d: Duration) -> String {
        let (start, from) = (Instant::now(), self.stdout.len());
        while !self.closed && start.elapsed() < d {
            self.read_once();
        }
        String::from_utf8_lossy(&self.stdout[from..]).into_owned()
    }

    /// Reads until the server closes the stream; the status JSON (channel 3).
    pub fn wait(&mut self, timeout: Duration) -> String {
        let start = Instant::now();
        while !self.closed {
            assert!(start.elapsed() < timeout, "exec stream still open");
            self.read_once();
        }
        self.status.clone().unwrap_or_default()
    }
}
