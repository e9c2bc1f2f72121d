//! Inbound mail on port 25: who may receive mail here (`policy`), the durable reply queue
//! (`spool`). The session machine is `smtp::server`; the socket side is `net::smtp`.

pub mod policy;
pub mod spool;

/// The `Message-ID` header's value (`<...>`), from the header block of a raw message.
pub fn message_id(data: &[u8]) -> Option<String> {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| data.windows(2).position(|w| w == b"\n\n"))
        .unwrap_or(data.len().min(64 * 1024));
    let head = String::from_utf8_lossy(&data[..end]);
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
        return (!id.is_empty()).then_some(id);
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
    }
}
