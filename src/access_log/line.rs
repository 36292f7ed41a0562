//! One access-log line, written straight into a buffer in the shape of the other log lines
//! (tracing's default format), e.g.
//!
//! ```text
//! 2026-11-27T18:15:02.387637Z  INFO reverseit::access: method=GET path=/small route=/ backend=http://127.0.0.1:4000 status=200 bytes=100 duration=0.377ms complete=true
//! ```
//!
//! tracing's formatter visits each field through `fmt::Debug` and styles it, and formats the date
//! anew each time: about 12 k instructions per line, as much as a third of a small proxied
//! request. Here the fields are copied as text and the date is formatted once per second.

use std::cell::Cell;
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::{Method, StatusCode};

/// What an access-log line says about a request.
#[derive(Debug)]
pub(crate) struct Line<'a> {
    pub(crate) method: &'a Method,
    pub(crate) path: &'a str,
    /// The route's mount path, `-` when no route matched.
    pub(crate) route: &'a str,
    /// The route's backend, `-` when no route matched.
    pub(crate) backend: &'a str,
    pub(crate) status: StatusCode,
    /// Response body bytes sent.
    pub(crate) bytes: u64,
    /// From the request head to the end of the response body, written in milliseconds.
    pub(crate) duration: Duration,
    /// The body reached its end (rather than being dropped early or failing).
    pub(crate) complete: bool,
}

impl Line<'_> {
    /// Appends the line, stamped `at`, and its newline to `out`.
    pub(crate) fn write(&self, at: SystemTime, out: &mut Vec<u8>) {
        write_stamp(at, out);
        out.extend_from_slice(b"  INFO reverseit::access: method=");
        out.extend_from_slice(self.method.as_str().as_bytes());
        out.extend_from_slice(b" path=");
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" route=");
        out.extend_from_slice(self.route.as_bytes());
        out.extend_from_slice(b" backend=");
        out.extend_from_slice(self.backend.as_bytes());
        out.extend_from_slice(b" status=");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.extend_from_slice(b" bytes=");
        out.extend_from_slice(itoa::Buffer::new().format(self.bytes).as_bytes());
        out.extend_from_slice(b" duration=");
        write_millis(self.duration, out);
        out.extend_from_slice(if self.complete {
            b" complete=true\n"
        } else {
            b" complete=false\n"
        });
    }
}

/// Appends `d` in milliseconds with three decimals (`0.377ms`, `1234.500ms`): one unit for every
/// line, easy to sort and sum, and written without `fmt` (whose `Debug` of a `Duration` cost about
/// 1 k instructions a line).
fn write_millis(d: Duration, out: &mut Vec<u8>) {
    let micros = d.as_micros();
    out.extend_from_slice(itoa::Buffer::new().format(micros / 1000).as_bytes());
    let mut fraction = *b".000ms";
    zero_padded((micros % 1000) as u32, &mut fraction[1..4]);
    out.extend_from_slice(&fraction);
}

/// Writes `n` in decimal into all of `digits`, zero-padded on the left (the caller sizes `digits`
/// to hold `n`).
fn zero_padded(mut n: u32, digits: &mut [u8]) {
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `YYYY-MM-DDTHH:MM:SS`: the part of a stamp that changes once a second.
type Seconds = [u8; 19];

thread_local! {
    /// The last second stamped on this thread and its text.
    static LAST_SECOND: Cell<(u64, Seconds)> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// Appends `at` as RFC 3339 UTC with microseconds, as tracing's `SystemTime` timer does.
fn write_stamp(at: SystemTime, out: &mut Vec<u8>) {
    // A clock before 1970 is stamped as 1970: a log line is no place to fail.
    let since_epoch = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let second = since_epoch.as_secs();
    let text = LAST_SECOND
        .try_with(|last| {
            let (cached, text) = last.get();
            if cached == second {
                return text;
            }
            let text = seconds_text(second);
            last.set((second, text));
            text
        })
        // The thread's locals are being torn down: format without the cache.
        .unwrap_or_else(|_| seconds_text(second));
    out.extend_from_slice(&text);
    let mut fraction = *b".000000Z";
    zero_padded(since_epoch.subsec_micros(), &mut fraction[1..7]);
    out.extend_from_slice(&fraction);
}

fn seconds_text(second: u64) -> Seconds {
    let mut text = [0; 19];
    let date = i64::try_from(second)
        .ok()
        .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    // 19 bytes exactly for years 0 to 9999, which is all `time` represents by default.
    let _ = write!(
        &mut text[..],
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        date.year(),
        u8::from(date.month()),
        date.day(),
        date.hour(),
        date.minute(),
        date.second()
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(complete: bool) -> Line<'static> {
        Line {
            method: &Method::GET,
            path: "/api/users",
            route: "/api",
            backend: "http://10.0.0.5:4000",
            status: StatusCode::OK,
            bytes: 5120,
            duration: Duration::from_micros(1800),
            complete,
        }
    }

    fn text(line: &Line<'_>, at: SystemTime) -> String {
        let mut out = Vec::new();
        line.write(at, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn line_has_every_field_after_a_stamp_like_the_other_log_lines() {
        // `date -u -d @1795000000`: 2026-11-18T11:06:40.
        let at = UNIX_EPOCH + Duration::new(1_795_000_000, 387_637_900);
        assert_eq!(
            text(&line(true), at),
            "2026-11-18T11:06:40.387637Z  INFO reverseit::access: method=GET path=/api/users \
             route=/api backend=http://10.0.0.5:4000 status=200 bytes=5120 duration=1.800ms \
             complete=true\n"
        );
        let at = UNIX_EPOCH + Duration::new(0, 5_000);
        assert!(text(&line(false), at).starts_with("1970-01-01T00:00:00.000005Z  INFO "));
        assert!(text(&line(false), at).ends_with(" complete=false\n"));
    }

    #[test]
    fn durations_are_milliseconds_with_three_decimals() {
        for (d, expected) in [
            (Duration::ZERO, "0.000ms"),
            (Duration::from_nanos(999), "0.000ms"),
            (Duration::from_micros(7), "0.007ms"),
            (Duration::from_micros(377_290), "377.290ms"),
            (Duration::from_millis(1_234_500), "1234500.000ms"),
            (Duration::new(3, 45_678_901), "3045.678ms"),
        ] {
            let mut out = Vec::new();
            write_millis(d, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected, "{d:?}");
        }
    }

    #[test]
    fn stamp_follows_the_clock_across_seconds_on_one_thread() {
        // The cached second must not outlive its second, in either direction.
        let base = 1_795_000_000;
        for (second, expected) in [
            (base, "2026-11-18T11:06:40.000000Z"),
            (base + 1, "2026-11-18T11:06:41.000000Z"),
            (base + 86_400, "2026-11-19T11:06:40.000000Z"),
            (base, "2026-11-18T11:06:40.000000Z"),
        ] {
            let mut out = Vec::new();
            write_stamp(UNIX_EPOCH + Duration::from_secs(second), &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), expected);
        }
    }

    #[test]
    fn stamp_matches_tracing_for_the_current_time() {
        // The same shape as the lines tracing writes, checked against its own timer.
        use tracing_subscriber::fmt::format::Writer;
        use tracing_subscriber::fmt::time::FormatTime;
        let mut theirs = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut theirs))
            .unwrap();
        let mut ours = Vec::new();
        write_stamp(SystemTime::now(), &mut ours);
        let ours = String::from_utf8(ours).unwrap();
        // The two clocks are read microseconds apart, so compare where the digits and the
        // separators are, and the year.
        let shape = |s: &str| s.replace(|c: char| c.is_ascii_digit(), "0");
        assert_eq!(shape(&ours), shape(&theirs), "{ours} vs {theirs}");
        assert_eq!(ours[..4], theirs[..4], "{ours} vs {theirs}");
    }
}
