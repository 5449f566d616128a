//! What the `mirror` binary's tests share: one HTTP/1.1 exchange over a raw connection.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Sends `request` on `connection` and reads one response (status, body); `None` when the
/// connection closed first.
pub(crate) fn exchange(connection: &mut TcpStream, request: &str) -> Option<(u16, String)> {
    connection
        .set_read_timeout(Some(Duration::from_secs(60)))
        .ok()?;
    connection.write_all(request.as_bytes()).ok()?;
    let mut received = Vec::new();
    let mut buffer = [0u8; 16384];
    loop {
        let n = connection.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let head = text[..end].to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .and_then(|value| value.trim().parse().ok())
            .unwrap_or(0);
        if received.len() >= end + 4 + length {
            let status = head.split(' ').nth(1)?.parse().ok()?;
            return Some((status, text[end + 4..end + 4 + length].to_owned()));
        }
    }
}
