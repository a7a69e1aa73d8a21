//! A server-sent-events client for the tests, written from the wire format (not feedsieve's own
//! reader): a raw HTTP/1.1 request, chunked transfer decoding, events split at blank lines.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// One event: its `event:` name, `id:` and `data:`.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

/// A connected stream.
pub struct SseClient {
    reader: BufReader<TcpStream>,
    /// Bytes of the current chunk not read yet.
    left: usize,
    /// Decoded body bytes not yet split into lines.
    pending: Vec<u8>,
    pub status: u16,
    pub headers: String,
}

impl SseClient {
    /// Connects to `addr` and requests `path`, with `Last-Event-ID` when given.
    pub fn connect(
        addr: &str,
        path: &str,
        last_event_id: Option<u64>,
    ) -> std::io::Result<SseClient> {
        let mut stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(Duration::from_secs(30)))?;
        let resume = last_event_id
            .map(|id| format!("Last-Event-ID: {id}\r\n"))
            .unwrap_or_default();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n"
        )?;
        let mut reader = BufReader::new(stream);
        let mut headers = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
            headers.push_str(&line);
        }
        let status = headers
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok(SseClient {
            reader,
            left: 0,
            pending: Vec::new(),
            status,
            headers,
        })
    }

    /// Reads more body bytes (de-chunked); false at the end of the stream.
    fn fill(&mut self) -> bool {
        if self.left == 0 {
            let mut size = String::new();
            match self.reader.read_line(&mut size) {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
            if size.trim().is_empty() {
                // The CRLF after a chunk.
                size.clear();
                if !matches!(self.reader.read_line(&mut size), Ok(n) if n > 0) {
                    return false;
                }
            }
            match usize::from_str_radix(size.trim(), 16) {
                Ok(0) | Err(_) => return false,
                Ok(n) => self.left = n,
            }
        }
        let mut buf = vec![0u8; self.left.min(64 * 1024)];
        match self.reader.read(&mut buf) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.left -= n;
                self.pending.extend_from_slice(&buf[..n]);
                true
            }
        }
    }

    fn line(&mut self) -> Option<String> {
        loop {
            if let Some(pos) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=pos).collect();
                let text = String::from_utf8_lossy(&raw);
                return Some(text.trim_end_matches(['\n', '\r']).to_string());
            }
            if !self.fill() {
                return None;
            }
        }
    }

    /// The next event (comments and heartbeats skipped); `None` when the stream ended.
    pub fn next_event(&mut self) -> Option<SseEvent> {
        let mut event = SseEvent {
            event: "message".into(),
            id: None,
            data: String::new(),
        };
        let mut any = false;
        loop {
            let line = self.line()?;
            if line.is_empty() {
                if any {
                    return Some(event);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((&line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            any = true;
            match field {
                "event" => event.event = value.to_string(),
                "id" => event.id = Some(value.to_string()),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
    }
}
