//! The watchdog on a paused clock: a connection closes one to two periods after its last activity,
//! and the shared clock stops with its last user.

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};

use super::*;

const PERIOD: Duration = Duration::from_secs(10);

/// Watches `activity` with `ticks` in a task that returns why, and when, the watchdog gave up.
fn watch(activity: &Arc<Activity>, ticks: &Ticks) -> JoinHandle<(Quiet, Instant)> {
    let activity = Arc::clone(activity);
    let ticks = ticks.clone();
    tokio::spawn(async move { (idle(&activity, ticks).await, Instant::now()) })
}

/// When the watched connection was found idle (and not stalled).
async fn idle_at(watched: JoinHandle<(Quiet, Instant)>) -> Instant {
    let (why, at) = watched.await.unwrap();
    assert_eq!(why, Quiet::Idle);
    at
}

/// Asserts the close came more than one and at most two periods after `last`.
fn assert_closed_in_time(closed: Instant, last: Instant) {
    let after = closed - last;
    assert!(
        after > PERIOD && after <= 2 * PERIOD,
        "closed {after:?} after the last activity"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unused_connection_closes_between_one_and_two_periods() {
    let ticks = Ticks::start(PERIOD);
    for offset in [
        Duration::ZERO,
        Duration::from_secs(3),
        Duration::from_secs(7),
    ] {
        sleep(offset).await;
        let accepted = Instant::now();
        let closed = idle_at(watch(&Arc::default(), &ticks)).await;
        assert_closed_in_time(closed, accepted);
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_accepted_just_before_a_tick_survives_it() {
    let ticks = Ticks::start(PERIOD);
    sleep(PERIOD - Duration::from_millis(1)).await;
    let accepted = Instant::now();
    let watched = watch(&Arc::default(), &ticks);
    sleep(Duration::from_millis(2)).await; // the tick has passed
    assert!(!watched.is_finished());
    let closed = idle_at(watched).await;
    assert_eq!(closed - accepted, PERIOD + Duration::from_millis(1));
}

#[tokio::test(start_paused = true)]
async fn a_request_in_flight_keeps_the_connection() {
    let ticks = Ticks::start(PERIOD);
    let activity = Arc::new(Activity::default());
    let guard = InFlight::new(&activity);
    let watched = watch(&activity, &ticks);
    sleep(3 * PERIOD + PERIOD / 2).await;
    assert!(!watched.is_finished());
    let released = Instant::now();
    drop(guard);
    assert_closed_in_time(idle_at(watched).await, released);
}

#[tokio::test(start_paused = true)]
async fn a_request_started_during_an_interval_defers_the_close() {
    let ticks = Ticks::start(PERIOD);
    let activity = Arc::new(Activity::default());
    let watched = watch(&activity, &ticks);
    sleep(PERIOD + PERIOD / 2).await;
    let request = Instant::now();
    drop(InFlight::new(&activity)); // a quick request
    sleep(PERIOD).await;
    assert!(
        !watched.is_finished(),
        "the interval with a request must not count as idle"
    );
    assert_closed_in_time(idle_at(watched).await, request);
}

#[tokio::test(start_paused = true)]
async fn writes_count_as_activity() {
    let ticks = Ticks::start(PERIOD);
    let activity = Arc::new(Activity::default());
    let watched = watch(&activity, &ticks);
    let mut last = Instant::now();
    for _ in 0..7 {
        sleep(PERIOD / 2 + Duration::from_millis(1)).await;
        activity.wrote(); // a slow reader still draining a response
        last = Instant::now();
    }
    assert!(!watched.is_finished());
    assert_closed_in_time(idle_at(watched).await, last);
}

#[tokio::test(start_paused = true)]
async fn a_response_the_client_stopped_taking_is_dropped_after_three_whole_periods() {
    let ticks = Ticks::start(PERIOD);
    let activity = Arc::new(Activity::default());
    let _request = InFlight::new(&activity);
    let watched = watch(&activity, &ticks);
    sleep(PERIOD / 2).await;
    activity.wrote();
    activity.write_blocked(); // the socket is full from here on
    let blocked = Instant::now();
    let (why, at) = tokio::time::timeout(10 * PERIOD, watched)
        .await
        .expect("the stalled connection was never given up")
        .unwrap();
    assert_eq!(why, Quiet::Stalled);
    let after = at - blocked;
    assert!(
        after > STALL_INTERVALS * PERIOD && after <= (STALL_INTERVALS + 1) * PERIOD,
        "dropped {after:?} after the socket filled"
    );
}

#[tokio::test(start_paused = true)]
async fn a_slow_reader_taking_anything_is_never_dropped() {
    let ticks = Ticks::start(PERIOD);
    let activity = Arc::new(Activity::default());
    let request = InFlight::new(&activity);
    let watched = watch(&activity, &ticks);
    // One write taken every period and a half, the socket full again right after each.
    for _ in 0..10 {
        activity.wrote();
        activity.write_blocked();
        sleep(PERIOD + PERIOD / 2).await;
    }
    assert!(!watched.is_finished());
    // A response in flight with nothing to send (a long poll) is not stalled either.
    activity.wrote();
    sleep(10 * PERIOD).await;
    assert!(!watched.is_finished());
    drop(request);
    idle_at(watched).await;
}

#[tokio::test(start_paused = true)]
async fn the_clock_stops_when_no_connection_or_server_holds_it() {
    let (tx, rx) = watch::channel(());
    let clock = tokio::spawn(tick(tx, PERIOD));
    let connection = Ticks(rx.clone());
    drop(rx);
    sleep(3 * PERIOD).await;
    assert!(!clock.is_finished(), "a connection still uses it");
    let stopped = Instant::now();
    drop(connection);
    clock.await.unwrap();
    assert_eq!(
        stopped.elapsed(),
        Duration::ZERO,
        "at once, not at the next tick"
    );
}

#[tokio::test(start_paused = true)]
async fn quiet_for_completes_after_a_quiet_period() {
    // The close grace: timed from its first poll.
    let activity = Arc::new(Activity::default());
    let start = Instant::now();
    quiet_for(&activity, Duration::from_secs(1)).await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));

    let grace = tokio::spawn({
        let activity = Arc::clone(&activity);
        async move { quiet_for(&activity, Duration::from_secs(1)).await }
    });
    sleep(Duration::from_millis(500)).await;
    activity.wrote(); // the HTTP/1.1 close or GOAWAY still being written
    sleep(Duration::from_millis(1000)).await;
    assert!(!grace.is_finished());
    sleep(Duration::from_millis(600)).await;
    assert!(grace.is_finished());
}
