//! Collects validation problems so that `build()` reports all of them at once.

use std::time::Duration;

use super::values::{Protocol, Protocols};
use super::{ConfigError, InvalidOption};

#[derive(Debug, Default)]
pub(crate) struct Checker {
    problems: Vec<InvalidOption>,
}

impl Checker {
    pub(crate) fn fail(&mut self, option: &str, value: impl std::fmt::Display, reason: &str) {
        self.problems
            .push(InvalidOption::new(option, value, reason));
    }

    pub(crate) fn positive(&mut self, option: &str, n: u64) {
        if n == 0 {
            self.fail(option, n, "must be at least 1");
        }
    }

    pub(crate) fn duration(&mut self, option: &str, d: Duration) {
        if d.is_zero() {
            self.fail(option, d.as_millis(), "a timeout must be at least 1 ms");
        }
    }

    pub(crate) fn protocols(&mut self, option: &str, list: &[Protocol]) -> Protocols {
        Protocols::from_list(list).unwrap_or_else(|| {
            self.fail(option, "[]", "must name at least one of http1, http2");
            Protocols::HTTP1
        })
    }

    pub(crate) fn absorb(&mut self, err: ConfigError) {
        self.problems.extend(err.problems().iter().cloned());
    }

    pub(crate) fn finish<T>(self, value: T) -> Result<T, ConfigError> {
        match ConfigError::from_problems(self.problems) {
            Some(e) => Err(e),
            None => Ok(value),
        }
    }
}
