//! Configuration errors: each names the option, the value and what is wrong with it (`CFG-2`).

use std::error::Error as StdError;
use std::fmt;

/// One invalid option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidOption {
    option: String,
    value: String,
    reason: String,
}

impl InvalidOption {
    /// An invalid `option` whose value was `value` (as written), with the reason.
    pub fn new(
        option: impl Into<String>,
        value: impl fmt::Display,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            option: option.into(),
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// The option's name, with its section when one was given (`routes[0].backend`).
    pub fn option(&self) -> &str {
        &self.option
    }

    /// The option's value as written.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Why the value is refused.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl fmt::Display for InvalidOption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid `{}` = {}: {}",
            self.option, self.value, self.reason
        )
    }
}

/// Every problem found while building a configuration; never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    problems: Vec<InvalidOption>,
}

impl ConfigError {
    /// The problems, in the order the options were checked.
    pub fn problems(&self) -> &[InvalidOption] {
        &self.problems
    }

    /// Prefixes every option name with a section, as in `routes[2].pool_timeout`.
    pub fn in_section(mut self, section: &str) -> Self {
        for p in &mut self.problems {
            p.option = format!("{section}.{}", p.option);
        }
        self
    }

    /// Appends another error's problems to this one.
    pub fn merge(&mut self, other: ConfigError) {
        self.problems.extend(other.problems);
    }

    /// Builds an error from collected problems, or `None` when there are none.
    pub(crate) fn from_problems(problems: Vec<InvalidOption>) -> Option<Self> {
        (!problems.is_empty()).then_some(Self { problems })
    }
}

impl From<InvalidOption> for ConfigError {
    fn from(p: InvalidOption) -> Self {
        Self { problems: vec![p] }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            fmt::Display::fmt(p, f)?;
        }
        Ok(())
    }
}

impl StdError for ConfigError {}
