//! Inbound mail on port 25: who may receive mail here (`policy`), the durable reply queue
//! (`spool`). The session machine is `smtp::server`; the socket side is `net::smtp`.

pub mod policy;
pub mod spool;

/// How far into a message herald looks for its header fields.
const HEADER_SCAN_MAX: usize = 64 * 1024;
/// A header line's limit (RFC 5322 §2.1.1); a longer Message-ID is not one we keep or log.
const MESSAGE_ID_MAX: usize = 998;

/// The `Message-ID` header's value (`<...>`), from the first 64 KiB of a raw message. A value
/// longer than a header line may be is ignored: it is copied into records and log lines.
pub fn message_id(data: &[u8]) -> Option<String> {
    let window = &data[..data.len().min(HEADER_SCAN_MAX)];
    let end = window
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| window.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(window.len());
    let head = String::from_utf8_lossy(&window[..end]);
    let mut lines = head.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim_end().eq_ignore_ascii_case("message-id") {
            continue;
        }
        let mut value = value.trim().to_string();
        while let Some(next) = lines.peek() {
            if next.starts_with([' ', '\t']) {
                value.push_str(next.trim());
                lines.next();
            } else {
                break;
            }
        }
        let id: String = value.chars().filter(|c| !c.is_control()).collect();
        return (!id.is_empty() && id.len() <= MESSAGE_ID_MAX).then_some(id);
    }
    None
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_ids() {
        use super::message_id;
        assert_eq!(
            message_id(b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nMessage-ID: <no>\r\n").as_deref(),
            Some("<a@b>")
        );
        assert_eq!(
            message_id(b"message-id:\r\n <folded@x>\r\n\r\n").as_deref(),
            Some("<folded@x>")
        );
        assert_eq!(
            message_id(b"Subject: x\r\n\r\nMessage-ID: <body@x>\r\n"),
            None
        );
        assert_eq!(message_id(b""), None);
        // Regression: a 2 MB Message-ID was copied into every recipient's record and log line.
        let huge = format!("Message-ID: <{}@x>\r\n\r\nbody", "a".repeat(2_000_000));
        assert_eq!(message_id(huge.as_bytes()), None);
        let late = format!(
            "X-Pad: {}\r\nMessage-ID: <late@x>\r\n\r\n",
            "p".repeat(70_000)
        );
        assert_eq!(
            message_id(late.as_bytes()),
            None,
            "only the first 64 KiB are read"
        );
    }
}
