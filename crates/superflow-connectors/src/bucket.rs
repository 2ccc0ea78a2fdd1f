//! `BucketAssigner`: which directory under a `FileSink`'s base path a part file goes
//! to (Flink's bucket assigners): one per hour of processing time by default, as
//! Flink's `DateTimeBucketAssigner`, or the base path itself.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// Which directory (bucket) under a [`FileSink`](crate::FileSink)'s base path its parts
/// are written to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BucketAssigner {
    /// A directory per period of processing time, named by a date-time pattern of
    /// Java's `DateTimeFormatter` (`yyyy-MM-dd--HH`, Flink's default: one directory an
    /// hour) in a time zone (`None`: the system's; an IANA name such as
    /// `Europe/Berlin`, `UTC`, or an offset such as `+08:00`). Flink's
    /// `DateTimeBucketAssigner`.
    DateTime {
        /// The pattern: letters `y M d H h m s S a E`, text in single quotes, and other
        /// characters as they are (`/` makes nested directories).
        format: String,
        /// The time zone of the directory names.
        time_zone: Option<String>,
    },
    /// Every part in the base path itself (Flink's `BasePathBucketAssigner`).
    BasePath,
}

impl Default for BucketAssigner {
    fn default() -> Self {
        BucketAssigner::date_time(DEFAULT_FORMAT, None)
    }
}

/// Flink's default bucket format: a directory an hour.
pub const DEFAULT_FORMAT: &str = "yyyy-MM-dd--HH";

impl BucketAssigner {
    /// Buckets by processing time, in `format`, in `time_zone` (`None`: the system's).
    pub fn date_time(format: &str, time_zone: Option<&str>) -> BucketAssigner {
        BucketAssigner::DateTime {
            format: format.to_string(),
            time_zone: time_zone.map(str::to_string),
        }
    }

    /// No buckets: every part in the base path.
    pub fn base_path() -> BucketAssigner {
        BucketAssigner::BasePath
    }

    /// The assigner ready to name buckets; the error names what is wrong with the
    /// pattern or the time zone.
    pub fn compile(&self) -> Result<Buckets, BucketFormatError> {
        match self {
            BucketAssigner::BasePath => Ok(Buckets::BasePath),
            BucketAssigner::DateTime { format, time_zone } => {
                let strftime = java_pattern_to_strftime(format)?;
                let zone = match time_zone.as_deref() {
                    None => TimeZone::system(),
                    Some(name) => time_zone_named(name)?,
                };
                Ok(Buckets::DateTime { strftime, zone })
            }
        }
    }
}

/// A compiled [`BucketAssigner`].
#[derive(Debug, Clone)]
pub enum Buckets {
    /// Named by a strftime pattern in a time zone.
    DateTime {
        /// The pattern, translated from Java's.
        strftime: String,
        /// The time zone.
        zone: TimeZone,
    },
    /// The base path.
    BasePath,
}

impl Buckets {
    /// The bucket of a record handled at `now`: a path relative to the base path (empty
    /// for the base path itself).
    pub fn bucket_at(&self, now: Timestamp) -> String {
        match self {
            Buckets::BasePath => String::new(),
            Buckets::DateTime { strftime, zone } => {
                now.to_zoned(zone.clone()).strftime(strftime).to_string()
            }
        }
    }

    /// The bucket of a record handled now.
    pub fn bucket_now(&self) -> String {
        match self {
            Buckets::BasePath => String::new(),
            Buckets::DateTime { .. } => self.bucket_at(Timestamp::now()),
        }
    }
}

/// What is wrong with a bucket assigner's format or time zone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketFormatError {
    /// The format is empty.
    #[error("the bucket format must not be empty")]
    Empty,
    /// A quote in the format is not closed.
    #[error("bucket format '{0}': a quote is not closed")]
    UnclosedQuote(String),
    /// The format uses a pattern letter this sink cannot name buckets by.
    #[error("bucket format '{pattern}': the pattern letter '{letter}' is not supported (use y M d H h m s S a E D, and quote text)")]
    UnsupportedLetter {
        /// The format.
        pattern: String,
        /// The letter.
        letter: char,
    },
    /// The time zone is not one Java's `ZoneId` would know.
    #[error("unknown time zone '{0}': use an IANA name such as 'Europe/Berlin', 'UTC', or an offset such as '+08:00'")]
    UnknownTimeZone(String),
}

/// A time zone by Java's `ZoneId` names: IANA names (`America/Los_Angeles`), `UTC`,
/// `GMT`, `Z`, and offsets (`+08:00`, `GMT-08:00`, `UTC+8`).
fn time_zone_named(name: &str) -> Result<TimeZone, BucketFormatError> {
    let bad = || BucketFormatError::UnknownTimeZone(name.to_string());
    let offset_text = ["UTC", "GMT", "UT"]
        .iter()
        .find_map(|prefix| name.strip_prefix(prefix))
        .unwrap_or(name);
    if matches!(offset_text, "" | "Z") {
        return Ok(TimeZone::UTC);
    }
    if let Some(sign) = offset_text
        .chars()
        .next()
        .filter(|c| *c == '+' || *c == '-')
    {
        let digits = &offset_text[1..];
        let (hours, minutes) = match digits.split_once(':') {
            Some((h, m)) => (h, m),
            None if digits.len() > 2 => digits.split_at(digits.len() - 2),
            None => (digits, "0"),
        };
        let hours: i32 = hours.parse().map_err(|_| bad())?;
        let minutes: i32 = minutes.parse().map_err(|_| bad())?;
        if hours > 18 || minutes > 59 {
            return Err(bad());
        }
        let seconds = (hours * 3600 + minutes * 60) * if sign == '-' { -1 } else { 1 };
        let offset = jiff::tz::Offset::from_seconds(seconds).map_err(|_| bad())?;
        return Ok(TimeZone::fixed(offset));
    }
    TimeZone::get(name).map_err(|_| bad())
}

/// Translates a pattern of Java's `DateTimeFormatter` into strftime.
fn java_pattern_to_strftime(pattern: &str) -> Result<String, BucketFormatError> {
    if pattern.is_empty() {
        return Err(BucketFormatError::Empty);
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        if c == '\'' {
            // Quoted text; '' is a quote.
            let rest: String = chars[i + 1..].iter().collect();
            match rest.find('\'') {
                Some(0) => {
                    out.push('\'');
                    i += 2;
                }
                Some(end) => {
                    out.push_str(&rest[..end].replace('%', "%%"));
                    i += end + 2;
                }
                None => return Err(BucketFormatError::UnclosedQuote(pattern.to_string())),
            }
            continue;
        }
        let spec = match (c, run) {
            ('y' | 'u', 2) => "%y",
            ('y' | 'u', _) => "%Y",
            ('M', 1) => "%-m",
            ('M', 2) => "%m",
            ('M', 3) => "%b",
            ('M', _) => "%B",
            ('d', 1) => "%-d",
            ('d', _) => "%d",
            ('H', 1) => "%-H",
            ('H', _) => "%H",
            ('h', 1) => "%-I",
            ('h', _) => "%I",
            ('m', 1) => "%-M",
            ('m', _) => "%M",
            ('s', 1) => "%-S",
            ('s', _) => "%S",
            ('S', 1..=3) => "%3f",
            ('S', _) => "%6f",
            ('a', _) => "%p",
            ('E', 1..=3) => "%a",
            ('E', _) => "%A",
            ('D', _) => "%j",
            _ if c.is_ascii_alphabetic() => {
                return Err(BucketFormatError::UnsupportedLetter {
                    pattern: pattern.to_string(),
                    letter: c,
                })
            }
            _ => {
                for _ in 0..run {
                    if c == '%' {
                        out.push_str("%%");
                    } else {
                        out.push(c);
                    }
                }
                i += run;
                continue;
            }
        };
        out.push_str(spec);
        i += run;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_default_names_an_hour_as_flink_does() -> Result<(), BucketFormatError> {
        let buckets = BucketAssigner::date_time(DEFAULT_FORMAT, Some("UTC")).compile()?;
        assert_eq!(
            buckets.bucket_at(at("2026-12-07T13:45:10Z")),
            "2026-12-07--13"
        );
        let shanghai =
            BucketAssigner::date_time(DEFAULT_FORMAT, Some("Asia/Shanghai")).compile()?;
        assert_eq!(
            shanghai.bucket_at(at("2026-12-07T13:45:10Z")),
            "2026-12-07--21"
        );
        let offset =
            BucketAssigner::date_time("yyyy/MM/dd/HH'h'mm", Some("GMT-08:00")).compile()?;
        assert_eq!(
            offset.bucket_at(at("2026-12-07T03:05:10Z")),
            "2026/12/06/19h05"
        );
        assert_eq!(BucketAssigner::base_path().compile()?.bucket_now(), "");
        Ok(())
    }

    #[test]
    fn a_bad_pattern_or_zone_is_named() {
        let err = |a: BucketAssigner| a.compile().err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(BucketAssigner::date_time("yyyy-QQ", None)).contains("'Q'"));
        assert!(err(BucketAssigner::date_time("'open", None)).contains("quote"));
        assert!(err(BucketAssigner::date_time("yyyy", Some("Mars/Olympus"))).contains("Mars"));
    }
}
