//! Calendar arithmetic for RFC 3339 timestamps, without a date crate.
//!
//! Also compiled into `build.rs` (via `#[path]`), so it depends on nothing but `core`.

/// Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number from [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl Civil {
    pub fn to_unix_micros(self) -> i64 {
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400 + i64::from(self.hour * 3600 + self.minute * 60 + self.second);
        secs * 1_000_000 + i64::from(self.micros)
    }

    pub fn from_unix_micros(micros: i64) -> Civil {
        let secs = micros.div_euclid(1_000_000);
        let sub = micros.rem_euclid(1_000_000) as u32;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: sod / 3600,
            minute: sod / 60 % 60,
            second: sod % 60,
            micros: sub,
        }
    }
}

fn put2(out: &mut [u8], at: usize, v: u32) {
    out[at] = b'0' + (v / 10 % 10) as u8;
    out[at + 1] = b'0' + (v % 10) as u8;
}

/// `2024-01-01T12:00:00.123456Z` (27 bytes). Years outside 0..=9999 are clamped.
pub fn rfc3339_micros(unix_micros: i64) -> [u8; 27] {
    format_civil(&Civil::from_unix_micros(unix_micros))
}

fn format_civil(c: &Civil) -> [u8; 27] {
    let mut out = *b"0000-00-00T00:00:00.000000Z";
    let year = c.year.clamp(0, 9999) as u32;
    put2(&mut out, 0, year / 100);
    put2(&mut out, 2, year % 100);
    put2(&mut out, 5, c.month);
    put2(&mut out, 8, c.day);
    put2(&mut out, 11, c.hour);
    put2(&mut out, 14, c.minute);
    put2(&mut out, 17, c.second);
    put2(&mut out, 20, c.micros / 10_000);
    put2(&mut out, 22, c.micros / 100 % 100);
    put2(&mut out, 24, c.micros % 100);
    out
}

/// `2025-01-07T10:30:00Z` (20 bytes), the precision of heartbeats.
pub fn rfc3339_seconds(unix_secs: i64) -> [u8; 20] {
    let full = rfc3339_micros(unix_secs.saturating_mul(1_000_000));
    let mut out = [0u8; 20];
    out[..19].copy_from_slice(&full[..19]);
    out[19] = b'Z';
    out
}

/// `Sun, 06 Nov 1994 08:49:37 GMT` (29 bytes): RFC 9110's IMF-fixdate, for `Date`.
/// Years outside 0..=9999 are clamped, as in [`rfc3339_micros`].
pub fn http_date(unix_secs: i64) -> [u8; 29] {
    const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let c = Civil::from_unix_micros(unix_secs.saturating_mul(1_000_000));
    // 1970-01-01 was a Thursday.
    let weekday = (unix_secs.div_euclid(86_400) + 4).rem_euclid(7) as usize;
    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    out[0..3].copy_from_slice(DAYS[weekday]);
    put2(&mut out, 5, c.day);
    out[8..11].copy_from_slice(MONTHS[(c.month - 1) as usize]);
    let year = c.year.clamp(0, 9999) as u32;
    put2(&mut out, 12, year / 100);
    put2(&mut out, 14, year % 100);
    put2(&mut out, 17, c.hour);
    put2(&mut out, 20, c.minute);
    put2(&mut out, 23, c.second);
    out
}

fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0u32, |acc, d| acc * 10 + u32::from(d - b'0')))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses an RFC 3339 date-time (`T`, `t` or space between date and time; `Z`, `z` or
/// `±hh:mm` offset; any number of fraction digits, kept to microseconds) into Unix
/// microseconds. A leap second (`:60`) is read as `:59.999999`.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let (c, offset_secs) = parse_fields(s.as_bytes())?;
    Some(c.to_unix_micros() - offset_secs * 1_000_000)
}

/// An RFC 3339 date-time read as [`parse_rfc3339`] reads it, written as [`rfc3339_micros`]
/// writes it. Already in UTC (the usual case in logs), the fields are written as they are,
/// without a round trip through a day count.
pub fn normalize_rfc3339(s: &[u8]) -> Option<[u8; 27]> {
    let (c, offset_secs) = parse_fields(s)?;
    Some(if offset_secs == 0 {
        format_civil(&c)
    } else {
        rfc3339_micros(c.to_unix_micros() - offset_secs * 1_000_000)
    })
}

/// The fields of an RFC 3339 date-time (a leap second already read as `:59.999999`) and
/// its offset from UTC in seconds.
fn parse_fields(b: &[u8]) -> Option<(Civil, i64)> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    let year = i64::from(digits(&b[0..4])?);
    let month = digits(&b[5..7])?;
    let day = digits(&b[8..10])?;
    let hour = digits(&b[11..13])?;
    let minute = digits(&b[14..16])?;
    let mut second = digits(&b[17..19])?;
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut micros: i64 = 0;
    if let Some(frac) = rest.strip_prefix(b".") {
        let n = frac.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, d) in frac[..n].iter().enumerate() {
            if i < 6 {
                micros = micros * 10 + i64::from(d - b'0');
            }
        }
        for _ in n..6 {
            micros *= 10;
        }
        rest = &frac[n..];
    }
    if second == 60 {
        second = 59;
        micros = 999_999;
    }
    let offset_secs: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let oh = digits(&[*h1, *h2])?;
            let om = digits(&[*m1, *m2])?;
            if oh > 23 || om > 59 {
                return None;
            }
            let off = i64::from(oh * 3600 + om * 60);
            if *sign == b'-' { -off } else { off }
        }
        _ => return None,
    };
    let civil = Civil {
        year,
        month,
        day,
        hour,
        minute,
        second,
        micros: micros as u32,
    };
    Some((civil, offset_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trips_over_four_centuries() {
        for days in (-200_000..200_000).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn formats_known_instants() {
        assert_eq!(&rfc3339_micros(0), b"1970-01-01T00:00:00.000000Z");
        // 2024-02-29T23:59:59.123456Z
        let t = (days_from_civil(2024, 2, 29) * 86_400 + 86_399) * 1_000_000 + 123_456;
        assert_eq!(&rfc3339_micros(t), b"2024-02-29T23:59:59.123456Z");
        assert_eq!(&rfc3339_seconds(t / 1_000_000), b"2024-02-29T23:59:59Z");
    }

    #[test]
    fn http_dates_are_imf_fixdate() {
        let cases: &[(i64, &[u8; 29])] = &[
            (0, b"Thu, 01 Jan 1970 00:00:00 GMT"),
            // RFC 9110's own example.
            (784_111_777, b"Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, b"Tue, 29 Feb 2000 00:00:00 GMT"),
            (1_736_245_800, b"Tue, 07 Jan 2025 10:30:00 GMT"),
            (1_709_251_199, b"Thu, 29 Feb 2024 23:59:59 GMT"),
            (4_102_444_800, b"Fri, 01 Jan 2100 00:00:00 GMT"),
            (-1, b"Wed, 31 Dec 1969 23:59:59 GMT"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                &http_date(*secs),
                *want,
                "{secs}: {}",
                String::from_utf8_lossy(&http_date(*secs))
            );
        }
        // Each weekday and each month name.
        let field = |secs: i64, at: std::ops::Range<usize>| {
            String::from_utf8_lossy(&http_date(secs)[at]).into_owned()
        };
        let week: Vec<String> = (0..7).map(|d| field(d * 86_400, 0..3)).collect();
        assert_eq!(week, ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"]);
        let months: Vec<String> = (1..=12)
            .map(|m| field(days_from_civil(2025, m, 1) * 86_400, 8..11))
            .collect();
        assert_eq!(
            months,
            [
                "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"
            ]
        );
    }

    #[test]
    fn parses_offsets_fractions_and_rejects_junk() {
        let base = parse_rfc3339("2024-01-01T12:00:00Z").unwrap();
        assert_eq!(&rfc3339_micros(base), b"2024-01-01T12:00:00.000000Z");
        assert_eq!(parse_rfc3339("2024-01-01T14:00:00+02:00"), Some(base));
        assert_eq!(parse_rfc3339("2024-01-01t11:30:00-00:30"), Some(base));
        assert_eq!(
            parse_rfc3339("2024-01-01 12:00:00.5z"),
            Some(base + 500_000)
        );
        assert_eq!(
            parse_rfc3339("2024-01-01T12:00:00.123456789Z"),
            Some(base + 123_456)
        );
        for bad in [
            "",
            "2024-01-01",
            "2024-13-01T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T12:00:00",
            "2024-01-01T12:00:00.Z",
            "2024-01-01T12:00:00+0200",
            "2024-01-01X12:00:00Z",
            "1700000000",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn normalizing_equals_parsing_then_formatting() {
        let mut n = 0;
        for year in ["0000", "0001", "1969", "1970", "2024", "2100", "9999"] {
            for month in 1..=12 {
                for day in [1, 28, 29, 30, 31] {
                    for (time, sep) in [("00:00:00", 'T'), ("23:59:59", 't'), ("12:34:60", ' ')] {
                        for frac in ["", ".5", ".123", ".123456", ".1234567891"] {
                            for offset in ["Z", "z", "+00:00", "-00:00", "+01:00", "-23:59"] {
                                let s =
                                    format!("{year}-{month:02}-{day:02}{sep}{time}{frac}{offset}");
                                let want = parse_rfc3339(&s).map(rfc3339_micros);
                                assert_eq!(normalize_rfc3339(s.as_bytes()), want, "{s}");
                                n += usize::from(want.is_some());
                            }
                        }
                    }
                }
            }
        }
        assert!(n > 30_000, "{n}");
        for bad in [
            "2024-02-30T00:00:00Z",
            "2024-01-01T12:00:00",
            "2024-01-01T12:00:00+2:00",
        ] {
            assert_eq!(normalize_rfc3339(bad.as_bytes()), None, "{bad}");
        }
    }
}
