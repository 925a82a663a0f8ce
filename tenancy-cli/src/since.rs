//! `--since`: an RFC 3339 time or an age before now.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::fail::Fail;

/// Parses `2026-12-01T09:00:00Z` or an age: `90s`, `15m`, `2h`, `7d`.
pub fn parse(text: &str, now: OffsetDateTime) -> Result<OffsetDateTime, Fail> {
    if let Ok(at) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(at);
    }
    let bad = || {
        Fail::usage(format!(
            "--since {text:?}: expected an RFC 3339 time (2026-12-01T09:00:00Z) or an age (90s, 15m, 2h, 7d)"
        ))
    };
    let split = text.len().checked_sub(1).ok_or_else(bad)?;
    let (n, unit) = text.split_at(split);
    let n: i64 = n.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3_600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .filter(|s| *s >= 0)
    .ok_or_else(bad)?;
    now.checked_sub(time::Duration::seconds(seconds))
        .ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_times() {
        let now = OffsetDateTime::parse("2026-12-01T12:00:00Z", &Rfc3339).unwrap();
        let at = |s| parse(s, now).unwrap().format(&Rfc3339).unwrap();
        assert_eq!(at("90s"), "2026-12-01T11:58:30Z");
        assert_eq!(at("15m"), "2026-12-01T11:45:00Z");
        assert_eq!(at("2h"), "2026-12-01T10:00:00Z");
        assert_eq!(at("7d"), "2026-11-24T12:00:00Z");
        assert_eq!(at("2026-11-30T08:00:00+01:00"), "2026-11-30T08:00:00+01:00");
        for bad in ["", "d", "-1h", "3w", "yesterday", "1.5h"] {
            let e = parse(bad, now).unwrap_err();
            assert_eq!(e.code, 2, "{bad}");
            assert!(e.message.contains("--since"), "{bad}: {}", e.message);
        }
    }
}
