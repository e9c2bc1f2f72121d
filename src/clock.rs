//! Wall-clock time as text, without a date library: RFC 3339 for APIs and stored records, and the
//! syslog stamp (`Nov 28 09:38:03`) of Postfix-style logs. Both in UTC: the appliance's logs and
//! APIs speak one zone.

use std::time::{SystemTime, UNIX_EPOCH};

/// A civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(z: i64) -> (i32, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y as i32, m as u8, d as u8)
}

/// Milliseconds since the epoch.
pub fn unix_millis(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

fn split(ms: i64) -> ((i32, u8, u8), i64, i64, i64, i64) {
    let days = ms.div_euclid(86_400_000);
    let rest = ms.rem_euclid(86_400_000);
    (
        civil_from_days(days),
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    )
}

/// `2026-11-28T09:38:03.123Z`
pub fn rfc3339(t: SystemTime) -> String {
    let ((y, mo, d), h, mi, s, ms) = split(unix_millis(t));
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z")
}

/// `Nov 28 09:38:03`, as syslog and Postfix write it.
pub fn syslog(t: SystemTime) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let ((_, mo, d), h, mi, s, _) = split(unix_millis(t));
    format!(
        "{} {d:2} {h:02}:{mi:02}:{s:02}",
        MONTHS[usize::from(mo) - 1]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_818), (2026, 12, 31));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn formats() {
        // 2014-10-30T00:47:19.306Z, the seed's example day.
        let t = UNIX_EPOCH + Duration::from_millis(1_414_630_039_306);
        assert_eq!(rfc3339(t), "2014-10-30T00:47:19.306Z");
        assert_eq!(syslog(t), "Oct 30 00:47:19");
        let t = UNIX_EPOCH + Duration::from_secs(1_420_070_400 + 86_400 * 4); // 2015-01-05
        assert_eq!(syslog(t), "Jan  5 00:00:00");
    }
}
