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

/// Days since 1970-01-01 of a civil date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i32, m: u8, d: u8) -> i64 {
    let y = i64::from(y) - i64::from(m <= 2);
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Milliseconds since the epoch of a stamp [`rfc3339`] wrote (`2026-11-28T09:38:03.123Z`).
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 24
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    let n = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, mo, d) = (n(0..4)?, n(5..7)?, n(8..10)?);
    let (h, mi, sec, ms) = (n(11..13)?, n(14..16)?, n(17..19)?, n(20..23)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let days = days_from_civil(y as i32, mo as u8, d as u8);
    Some(days * 86_400_000 + h * 3_600_000 + mi * 60_000 + sec * 1000 + ms)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    unix_millis(SystemTime::now())
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

    #[test]
    fn rfc3339_round_trips() {
        for ms in [
            0i64,
            1_414_630_039_306,
            1_796_384_320_999,
            951_782_400_000, /* 2000-02-29 */
        ] {
            let t = UNIX_EPOCH + Duration::from_millis(ms as u64);
            assert_eq!(parse_rfc3339_ms(&rfc3339(t)), Some(ms));
        }
        for d in [0i64, 19_723, 20_818, -1, 11_016] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
        for bad in [
            "",
            "2026-11-28",
            "2026-13-01T00:00:00.000Z",
            "2026-11-28T25:00:00.000Z",
            "2026-11-28T00:00:00.000+01",
        ] {
            assert_eq!(parse_rfc3339_ms(bad), None, "{bad}");
        }
    }
}
