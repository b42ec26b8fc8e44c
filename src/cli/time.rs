//! `--creation-time`: RFC 3339 in UTC (`2024-05-01T12:00:00Z`) or `@SECONDS`.
//!
//! Only UTC is accepted: an image's `created` is written in UTC, and a
//! local offset would have to be converted, which invites surprises.  The
//! range (years 0000 to 9999) is checked by `ImageOptions::set_creation_time`.
//!
//! The calendar (month lengths, leap years, days since the epoch) is the
//! `time` crate's.  `time` rather than `jiff`: `time`'s UTC date-times
//! reach 9999-12-31T23:59:59Z, the last second RFC 3339 and the option
//! take, where `jiff`'s timestamps stop on 9999-12-30 (they keep room for
//! any UTC offset).  The grammar is checked here, so that each malformed
//! field is named in the error.

use time::{Date, Month, PrimitiveDateTime, Time};

/// Parses `s` as `YYYY-MM-DDTHH:MM:SSZ` (or `+00:00` for `Z`) or `@SECONDS`
/// and returns seconds since the epoch.  The error says what is wrong,
/// without naming the option (the caller does).
pub fn parse_creation_time(s: &str) -> Result<i64, String> {
    if let Some(digits) = s.strip_prefix('@') {
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("expected @ followed by a number of seconds since 1970-01-01T00:00:00Z".into());
        }
        return digits.parse::<i64>().map_err(|_| "too large a number of seconds".into());
    }
    let b = s.as_bytes();
    let shape_ok = b.len() >= 19
        && [4, 7].iter().all(|&i| b[i] == b'-')
        && matches!(b[10], b'T' | b't')
        && [13, 16].iter().all(|&i| b[i] == b':')
        && [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18].iter().all(|&i| b[i].is_ascii_digit());
    if !shape_ok {
        return Err("expected YYYY-MM-DDTHH:MM:SSZ or @SECONDS".into());
    }
    match &s[19..] {
        "Z" | "z" | "+00:00" => {}
        rest if rest.starts_with('.') => return Err("fractional seconds are not supported".into()),
        "" => return Err("no time zone: append Z for UTC".into()),
        _ => return Err("only UTC is accepted: end the time with Z".into()),
    }
    // At most four digits, or two: each fits its type.
    let number = |from: usize, to: usize| -> u16 { s[from..to].parse().expect("checked digits") };
    let (year, month, day) = (number(0, 4), number(5, 7) as u8, number(8, 10) as u8);
    let (hour, minute, second) = (number(11, 13) as u8, number(14, 16) as u8, number(17, 19) as u8);
    let Ok(month_of_year) = Month::try_from(month) else { return Err(format!("month {month:02} does not exist")) };
    let date = Date::from_calendar_date(i32::from(year), month_of_year, day)
        .map_err(|_| format!("{year:04}-{month:02} has no day {day:02}"))?;
    let time_of_day = Time::from_hms(hour, minute, second)
        .map_err(|_| format!("{hour:02}:{minute:02}:{second:02} is not a time of day"))?;
    Ok(PrimitiveDateTime::new(date, time_of_day).assume_utc().unix_timestamp())
}

/// Days in `month` (1..=12) of `year`, as the calendar has them: what the
/// tests expect the parser to accept.
#[cfg(test)]
fn days_in_month(year: i64, month: u32) -> u32 {
    let month = Month::try_from(u8::try_from(month).expect("a month")).expect("a month");
    u32::from(month.length(i32::try_from(year).expect("a year")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Seconds at midnight UTC of `date` (`YYYY-MM-DD`).
    fn midnight(date: &str) -> Result<i64, String> {
        parse_creation_time(&format!("{date}T00:00:00Z"))
    }

    #[test]
    fn known_days() {
        let day = |date: &str| midnight(date).map(|t| t / 86_400);
        assert_eq!(day("1970-01-01"), Ok(0));
        assert_eq!(day("1970-01-02"), Ok(1));
        assert_eq!(midnight("1969-12-31"), Ok(-86_400));
        assert_eq!(day("1972-03-01"), Ok(790)); // after the first leap day
        assert_eq!(day("2000-03-01"), Ok(11_017));
        assert_eq!(midnight("0001-01-01"), Ok(-719_162 * 86_400));
        assert_eq!(midnight("0000-01-01"), Ok(-719_528 * 86_400)); // year 0 is a leap year
        assert_eq!(midnight("0000-03-01"), Ok(-719_468 * 86_400));
    }

    #[test]
    fn consecutive_dates_are_consecutive_days() {
        // Walk every day from 1600 to 2500 (leap centuries 1600, 2000, 2400
        // and common ones 1700, 1800, 1900, 2100, ...): each is one day
        // after the one before, and the day after a month's last is refused.
        let mut expected = midnight("1600-01-01").unwrap();
        for year in 1600..=2500 {
            for month in 1..=12u32 {
                let last = days_in_month(year, month);
                for day in 1..=last {
                    assert_eq!(midnight(&format!("{year:04}-{month:02}-{day:02}")), Ok(expected), "{year}-{month}-{day}");
                    expected += 86_400;
                }
                assert!(midnight(&format!("{year:04}-{month:02}-{:02}", last + 1)).is_err(), "{year}-{month}-{}", last + 1);
            }
        }
        assert_eq!(expected, midnight("2501-01-01").unwrap());
    }

    #[test]
    fn leap_years() {
        assert!(midnight("2024-02-29").is_ok());
        assert!(midnight("2023-02-29").is_err());
        assert!(midnight("1900-02-29").is_err());
        assert!(midnight("2000-02-29").is_ok());
        assert_eq!((days_in_month(2024, 2), days_in_month(2023, 2), days_in_month(1900, 2), days_in_month(2000, 2)), (29, 28, 28, 29));
    }

    #[test]
    fn rfc3339_times() {
        // Values as `date -u -d ... +%s` gives them.
        assert_eq!(parse_creation_time("1970-01-01T00:00:01Z"), Ok(1));
        assert_eq!(parse_creation_time("2000-01-01T00:00:00Z"), Ok(946_684_800));
        assert_eq!(parse_creation_time("2024-02-29T12:34:56Z"), Ok(1_709_210_096));
        assert_eq!(parse_creation_time("2038-01-19T03:14:08+00:00"), Ok(2_147_483_648));
        assert_eq!(parse_creation_time("2038-01-19t03:14:08z"), Ok(2_147_483_648));
        assert_eq!(parse_creation_time("9999-12-31T23:59:59Z"), Ok(253_402_300_799));
        assert_eq!(parse_creation_time("1969-12-31T23:59:59Z"), Ok(-1));
        assert_eq!(parse_creation_time("0000-01-01T00:00:00Z"), Ok(-62_167_219_200));
    }

    #[test]
    fn seconds_since_the_epoch() {
        assert_eq!(parse_creation_time("@0"), Ok(0));
        assert_eq!(parse_creation_time("@1700000000"), Ok(1_700_000_000));
        for bad in ["@", "@-1", "@1.5", "@ 1", "@99999999999999999999"] {
            assert!(parse_creation_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bad_times_say_why() {
        let why = |s: &str| parse_creation_time(s).unwrap_err();
        assert!(why("2023-02-29T00:00:00Z").contains("no day 29"));
        assert!(why("2024-13-01T00:00:00Z").contains("month 13"));
        assert!(why("2024-01-01T24:00:00Z").contains("time of day"));
        assert!(why("2024-01-01T23:59:60Z").contains("time of day"));
        assert!(why("2024-01-01T00:00:00").contains("no time zone"));
        assert!(why("2024-01-01T00:00:00+02:00").contains("only UTC"));
        assert!(why("2024-01-01T00:00:00.5Z").contains("fractional"));
        for bad in ["", "yesterday", "2024-01-01", "2024-1-1T00:00:00Z", "2024-01-01 00:00:00Z", "١٩٧٠-01-01T00:00:00Z"] {
            assert!(parse_creation_time(bad).is_err(), "{bad}");
        }
    }
}

/// Properties over the whole range the option takes: formatting (as the
/// library writes `created`) and parsing agree, and every malformed field is
/// refused, saying which.
#[cfg(test)]
mod props {
    use super::*;
    use guix_docker_native::CREATION_TIME_RANGE;
    use proptest::prelude::*;

    /// RFC 3339 in UTC, as the image config's `created` has it.
    fn rfc3339(t: i64) -> String {
        let t = time::OffsetDateTime::from_unix_timestamp(t).unwrap();
        t.format(&time::format_description::well_known::Rfc3339).unwrap()
    }

    /// A valid date and time of the years 0000 to 9999, as fields.
    fn fields() -> impl Strategy<Value = (i64, u32, u32, i64, i64, i64)> {
        (0i64..=9999, 1u32..=12)
            .prop_flat_map(|(y, m)| (Just(y), Just(m), 1..=days_in_month(y, m), 0i64..24, 0i64..60, 0i64..60))
    }

    fn format_fields((y, mo, d, h, mi, s): (i64, u32, u32, i64, i64, i64)) -> String {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn formatted_times_parse_back(t in prop_oneof![CREATION_TIME_RANGE, -100_000i64..100_000, Just(*CREATION_TIME_RANGE.start()), Just(*CREATION_TIME_RANGE.end())]) {
            let text = rfc3339(t);
            prop_assert_eq!(parse_creation_time(&text), Ok(t), "{}", text);
            prop_assert_eq!(parse_creation_time(&text.replace('Z', "+00:00")), Ok(t));
            prop_assert_eq!(parse_creation_time(&text.to_lowercase()), Ok(t));
            if t >= 0 {
                prop_assert_eq!(parse_creation_time(&format!("@{t}")), Ok(t));
            }
        }

        #[test]
        fn parsed_times_format_back(f in fields()) {
            let text = format_fields(f);
            let t = parse_creation_time(&text).map_err(TestCaseError::fail)?;
            prop_assert!(CREATION_TIME_RANGE.contains(&t), "{} -> {}", text, t);
            prop_assert_eq!(rfc3339(t), text);
            // The next second is one more, across days, months and years.
            if t < *CREATION_TIME_RANGE.end() {
                prop_assert_eq!(parse_creation_time(&rfc3339(t + 1)), Ok(t + 1));
            }
        }

        #[test]
        fn fields_out_of_range_are_refused_by_name(f in fields(), which in 0..5usize, bad in 0u32..100) {
            let (y, mut mo, mut d, mut h, mut mi, mut s) = f;
            let expected = match which {
                0 => { mo = if bad % 2 == 0 { 0 } else { 13 + bad % 87 }; format!("month {mo:02}") }
                1 => { d = if bad % 2 == 0 { 0 } else { days_in_month(y, mo) + 1 + bad % (99 - days_in_month(y, mo)) }; format!("no day {d:02}") }
                2 => { h = 24 + i64::from(bad % 76); "not a time of day".into() }
                3 => { mi = 60 + i64::from(bad % 40); "not a time of day".into() }
                _ => { s = 60 + i64::from(bad % 40); "not a time of day".into() }
            };
            let text = format_fields((y, mo, d, h, mi, s));
            let err = parse_creation_time(&text).expect_err(&text);
            prop_assert!(err.contains(&expected), "{}: {}", text, err);
        }

        /// Random strings never panic; what is accepted is either @DIGITS
        /// with that value, or a time whose formatting is the input up to
        /// the case of T and Z and the spelling of UTC.
        #[test]
        fn random_strings_are_accepted_only_in_the_grammar(s in prop_oneof![".{0,30}", "@[0-9+ -]{0,22}", "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(Z|z|\\+00:00|\\+01:00|\\.5Z|)", "[0-9:TZ+-]{18,26}"]) {
            if let Ok(t) = parse_creation_time(&s) {
                match s.strip_prefix('@') {
                    Some(digits) => {
                        prop_assert!(!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()), "{:?}", s);
                        prop_assert_eq!(digits.trim_start_matches('0').parse::<i64>().unwrap_or(0), t);
                    }
                    None => {
                        let normal = s[..19].to_uppercase() + "Z";
                        prop_assert!(s.len() == 20 || s.ends_with("+00:00"), "{:?}", s);
                        prop_assert_eq!(rfc3339(t), normal, "{:?}", s);
                    }
                }
            }
        }
    }
}
