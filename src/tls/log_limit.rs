//! Warnings an attacker can trigger at will (refused handshakes, full connection tables) are
//! logged at most once a second each, with a count of the ones left out, so that an attack
//! leaves a trace at the default level without flooding the log.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The shortest time between two lines of one kind.
const INTERVAL: Duration = Duration::from_secs(1);

/// One kind of warning, rate-limited.
#[derive(Debug, Default)]
pub(crate) struct LogLimit {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    left_out: u64,
}

impl LogLimit {
    /// Runs `log` with the number of events not logged since the last line, unless a line
    /// of this kind was written less than a second ago (then only counts the event).
    pub(crate) fn log(&self, log: impl FnOnce(u64)) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if state
            .last
            .is_some_and(|last| now.duration_since(last) < INTERVAL)
        {
            state.left_out += 1;
            return;
        }
        let left_out = std::mem::take(&mut state.left_out);
        state.last = Some(now);
        drop(state);
        log(left_out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_a_second_with_the_count_left_out() {
        let limit = LogLimit::default();
        let mut lines = Vec::new();
        for _ in 0..5 {
            limit.log(|n| lines.push(n));
        }
        assert_eq!(lines, vec![0]);
        limit.state.lock().unwrap().last = Some(Instant::now() - INTERVAL);
        limit.log(|n| lines.push(n));
        assert_eq!(lines, vec![0, 4]);
    }
}
