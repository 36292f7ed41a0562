//! Loopback ports for the servers the harnesses start (the e2e peers, the benchmark's backends and
//! proxies).
//!
//! A port is checked free here and bound by the server a moment later. A port from the kernel's
//! ephemeral range (what binding port 0 hands out: 32768-60999 on Linux by default) can be taken
//! in that moment by any outgoing connection, a readiness probe of the harness itself included:
//! seen once in CI as nginx exiting with "Address already in use". Ports below that range are never
//! picked for outgoing connections, so only another server could take one, and that would have to
//! pick the same port in the same moment.

use std::net::TcpListener;
use std::ops::Range;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Where ports are picked: below the ephemeral range, above the well-known and common ones.
const RANGE: Range<u16> = 20_000..32_000;

/// The next candidate's offset into [`RANGE`], advanced at every call so that ports handed out
/// before their servers bound them are not handed out again.
static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);

/// A loopback port free right now, outside the ephemeral range.
pub(crate) fn free_port() -> Result<u16, String> {
    pick(&NEXT)
}

/// [`free_port`] with its own cursor.
fn pick(next: &AtomicU32) -> Result<u16, String> {
    let span = u32::from(RANGE.end - RANGE.start);
    // The first call starts somewhere that depends on the process and the clock, so concurrent
    // harnesses (or a rerun) do not walk the same sequence.
    let _ = next.compare_exchange(
        u32::MAX,
        seed() % span,
        Ordering::Relaxed,
        Ordering::Relaxed,
    );
    for _ in 0..span {
        let offset = next.fetch_add(1, Ordering::Relaxed) % span;
        let port = RANGE.start + offset as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(format!(
        "no free loopback port in {}..{}",
        RANGE.start, RANGE.end
    ))
}

fn seed() -> u32 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::process::id().wrapping_mul(2_654_435_761) ^ nanos
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_free_and_outside_the_ephemeral_range() {
        let next = AtomicU32::new(u32::MAX);
        let ports: Vec<u16> = (0..50).map(|_| pick(&next).unwrap()).collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            ports.len(),
            "a port handed out twice: {ports:?}"
        );
        for port in ports {
            assert!(RANGE.contains(&port), "{port}");
            // Still free: nothing kept it.
            TcpListener::bind(("127.0.0.1", port)).unwrap();
        }
    }

    #[test]
    fn a_port_in_use_is_skipped() {
        let next = AtomicU32::new(u32::MAX);
        let taken = pick(&next).unwrap();
        let _held = TcpListener::bind(("127.0.0.1", taken)).unwrap();
        // The next candidate is `taken` itself, held: it must be passed over.
        next.store(u32::from(taken - RANGE.start), Ordering::Relaxed);
        let port = pick(&next).unwrap();
        assert_ne!(port, taken);
        assert!(RANGE.contains(&port));
    }
}
