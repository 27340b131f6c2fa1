use std::fmt;
use std::str::FromStr;

/// A length of time in whole seconds, written as people write one: a whole number and a
/// unit, `d` (days), `h`, `m` or `s` (`14d`, `12h`, `30m`, `90s`); a bare number is seconds.
/// The one form of a duration both on the command line (`--ttl 30d`, `--expiring-within
/// 14d`) and in the API (`GET /v1/keys?expiring_within=14d`): one parser for both, so the
/// two cannot drift. It is written back in its largest whole unit (`1209600` is `14d`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Span {
    seconds: i64,
}

/// The error for a string that is not a [`Span`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpanError {
    /// No whole number first.
    #[error("invalid duration {0:?}: use e.g. 90d, 12h, 30m, 45s")]
    Malformed(String),
    /// A unit other than `d`, `h`, `m` or `s`.
    #[error("invalid duration unit in {0:?}: use d, h, m or s")]
    Unit(String),
    /// More seconds than fit in an `i64`.
    #[error("duration {0:?} is too long")]
    TooLong(String),
}

impl Span {
    /// The units, largest first, with their length in seconds.
    const UNITS: [(&str, i64); 4] = [("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)];

    /// A span of `seconds` (at least 0).
    pub fn from_seconds(seconds: u32) -> Self {
        Self {
            seconds: i64::from(seconds),
        }
    }

    /// A span of whole `days`.
    pub const fn from_days(days: u32) -> Self {
        Self {
            seconds: days as i64 * 86_400,
        }
    }

    /// Its length in seconds (never negative).
    pub fn seconds(self) -> i64 {
        self.seconds
    }

    /// Its length as a [`time::Duration`].
    pub fn duration(self) -> time::Duration {
        time::Duration::seconds(self.seconds)
    }
}

impl FromStr for Span {
    type Err = SpanError;

    fn from_str(s: &str) -> Result<Self, SpanError> {
        let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
            Some(i) => s.split_at(i),
            None => (s, "s"),
        };
        let n: i64 = digits
            .parse()
            .map_err(|_| SpanError::Malformed(s.to_owned()))?;
        let (_, factor) = Self::UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .ok_or_else(|| SpanError::Unit(s.to_owned()))?;
        let seconds = n
            .checked_mul(*factor)
            .ok_or_else(|| SpanError::TooLong(s.to_owned()))?;
        Ok(Self { seconds })
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (name, factor) = Self::UNITS
            .iter()
            .find(|(_, factor)| self.seconds != 0 && self.seconds % factor == 0)
            .unwrap_or(&("s", 1));
        write!(f, "{}{name}", self.seconds / factor)
    }
}

/// On the wire as its text (`14d`), the form [`Span`]'s `Display` writes and `FromStr` reads.
impl serde::Serialize for Span {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

deserialize_from_str!(Span);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_a_number_and_a_unit_and_write_the_largest_whole_unit() {
        for (text, seconds, written) in [
            ("14d", 1_209_600, "14d"),
            ("12h", 43_200, "12h"),
            ("30m", 1_800, "30m"),
            ("90s", 90, "90s"),
            ("90", 90, "90s"),
            ("1209600", 1_209_600, "14d"),
            ("48h", 172_800, "2d"),
            ("0d", 0, "0s"),
            ("3601s", 3_601, "3601s"),
        ] {
            let span: Span = text.parse().unwrap();
            assert_eq!(span.seconds(), seconds, "{text}");
            assert_eq!(span.to_string(), written, "{text}");
            assert_eq!(span.to_string().parse::<Span>().unwrap(), span, "{text}");
        }
        assert_eq!(
            Span::from_seconds(60).duration(),
            time::Duration::minutes(1)
        );
    }

    #[test]
    fn anything_else_is_refused_with_a_reason() {
        for text in ["", "d", "-1d", "+1d", " 14d", "99999999999999999999"] {
            assert_eq!(
                text.parse::<Span>(),
                Err(SpanError::Malformed(text.into())),
                "{text}"
            );
        }
        for text in ["14w", "14 d", "14dd", "14D", "14d ", "14ms", "1.5d"] {
            assert_eq!(
                text.parse::<Span>(),
                Err(SpanError::Unit(text.into())),
                "{text}"
            );
        }
        let long = format!("{}d", i64::MAX / 86_400 + 1);
        assert_eq!(long.parse::<Span>(), Err(SpanError::TooLong(long.clone())));
        assert_eq!(
            "14w".parse::<Span>().unwrap_err().to_string(),
            "invalid duration unit in \"14w\": use d, h, m or s"
        );
    }

    #[test]
    fn spans_travel_as_their_text() {
        let span: Span = "14d".parse().unwrap();
        assert_eq!(serde_json::to_value(span).unwrap(), "14d");
        assert_eq!(serde_json::from_value::<Span>("336h".into()).unwrap(), span);
        assert!(serde_json::from_value::<Span>("two weeks".into()).is_err());
        assert!(serde_json::from_value::<Span>(14.into()).is_err());
    }
}
