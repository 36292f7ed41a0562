//! The TOML configuration file (`cli.md`): its shape, and errors that name the key, the value and
//! the line.
//!
//! The document is parsed once into toml's spanned tree; each section is then deserialized on its
//! own, so that one bad section does not hide the others' problems. Within a section, a key of the
//! wrong shape (a string for a number, an unknown name) is reported by name and set aside, so the
//! next one shows too, and validation still runs on the rest. Validation errors from
//! `reverseit-core` (which name options such as `routes[2].pool_timeout`) are mapped back to lines
//! through the same tree.

use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use reverseit_core::config::{PoolSpec, RouteSpec};
use reverseit_core::{ConfigError, InvalidOption, PoolConfig};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use crate::settings::{
    self, BadConfig, DEFAULT_LISTEN, Mount, SHUTDOWN_TIMEOUT, ServerLimits, Settings,
};

/// The `[tls]` table.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSpec {
    cert: PathBuf,
    key: PathBuf,
}

/// The `[server]` table; every key optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSpec {
    header_read_timeout: Option<u64>,
    max_connections: Option<usize>,
    http2_max_concurrent_streams: Option<u32>,
    max_header_list_size: Option<u32>,
}

/// Highest `max_connections` accepted: the permits live in a tokio `Semaphore`, whose own ceiling
/// is far higher; anything above this is a typo.
const MAX_CONNECTIONS_CEILING: usize = 100_000_000;

/// The top-level keys, for the unknown-key message.
const TOP_LEVEL: &str = "`listen`, `shutdown_timeout`, `tls`, `server`, `pool`, `routes`";

/// Reads and checks the file at `path`. Relative paths inside it (`[tls]` files, `ca_file`) are
/// taken relative to the file's own folder, so the proxy can be started from anywhere.
pub(crate) fn load(path: &Path) -> Result<Settings, BadConfig> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        BadConfig::one(format!(
            "cannot read the config file `{}`: {e}",
            path.display()
        ))
    })?;
    let base = path.parent().unwrap_or(Path::new(""));
    parse(&path.display().to_string(), &text, base)
}

/// Checks the TOML `text`; `name` labels the messages, `base` anchors relative paths.
pub(crate) fn parse(name: &str, text: &str, base: &Path) -> Result<Settings, BadConfig> {
    let src = Source { name, text };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    if !syntax.is_empty() {
        return Err(BadConfig {
            problems: syntax.iter().map(|e| src.toml_error(e, None)).collect(),
        });
    }
    let mut file = FileParts::default();
    let mut problems = Vec::new();
    for (key, value) in doc.get_ref().iter() {
        match key.get_ref().as_ref() {
            "listen" => file.listen = src.section("listen", value, &mut problems),
            "shutdown_timeout" => {
                file.shutdown_timeout = src.section("shutdown_timeout", value, &mut problems);
            }
            "tls" => file.tls = src.section("tls", value, &mut problems),
            "server" => file.server = src.section("server", value, &mut problems),
            "pool" => file.pool = src.section("pool", value, &mut problems),
            "routes" => {
                file.routes_declared = true;
                src.routes(value, &mut file.routes, &mut problems);
            }
            other => problems.push(src.at(
                key.span(),
                &tidy(&format!(
                    "unknown field `{other}`, expected one of {TOP_LEVEL}"
                )),
            )),
        }
    }
    // Shape errors first, then what validation finds in the rest: the keys of a wrong shape were
    // set aside, so they cannot produce errors of their own there.
    match file.check(&src, doc.get_ref(), base) {
        Ok(settings) if problems.is_empty() => Ok(settings),
        Ok(_) => Err(BadConfig { problems }),
        Err(mut more) => {
            problems.append(&mut more.problems);
            Err(BadConfig { problems })
        }
    }
}

/// The sections as deserialized, before validation.
#[derive(Debug, Default)]
struct FileParts {
    listen: Option<String>,
    shutdown_timeout: Option<u64>,
    tls: Option<TlsSpec>,
    server: Option<ServerSpec>,
    pool: Option<PoolSpec>,
    /// Each route with its index in the file (a route whose shape is wrong is left out).
    routes: Vec<(usize, RouteSpec)>,
    /// The file has a `routes` key, whatever its routes' shape.
    routes_declared: bool,
}

impl FileParts {
    fn check(
        self,
        src: &Source<'_>,
        doc: &DeTable<'_>,
        base: &Path,
    ) -> Result<Settings, BadConfig> {
        let mut problems = Vec::new();
        let mut fail = |option: &str, value: String, reason: &str| {
            let p = InvalidOption::new(option, value, reason);
            problems.push(src.invalid(doc, &p));
        };

        let listen = match &self.listen {
            None => DEFAULT_LISTEN,
            Some(s) => s.parse::<SocketAddr>().unwrap_or_else(|_| {
                fail(
                    "listen",
                    format!("{s:?}"),
                    "expected an IP address and port, such as \"127.0.0.1:8080\" or \"[::]:443\"",
                );
                DEFAULT_LISTEN
            }),
        };
        let shutdown_timeout = self
            .shutdown_timeout
            .map_or(SHUTDOWN_TIMEOUT, Duration::from_millis);

        let limits = self
            .server
            .as_ref()
            .map_or_else(ServerLimits::default, |s| server_limits(s, &mut fail));

        let tls = self.tls.as_ref().and_then(|t| {
            let (cert, key) = (base.join(&t.cert), base.join(&t.key));
            crate::tls::server_config(&cert, &key)
                .map_err(|e| {
                    let at = find(doc, "tls").map_or(0, |v| v.span().start);
                    problems.push(src.at(at..at, &format!("[tls]: {e}")));
                })
                .ok()
        });

        let pool = match self.pool.as_ref().map(PoolSpec::build) {
            None => PoolConfig::default(),
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                problems.extend(src.config_error(doc, &e.in_section("pool")));
                PoolConfig::default()
            }
        };

        if !self.routes_declared {
            problems.push(format!(
                "{}: no routes: add at least one [[routes]] table with a `backend`",
                src.name
            ));
        }
        let mut routes: Vec<Mount> = Vec::with_capacity(self.routes.len());
        for (i, mut spec) in self.routes {
            let section = format!("routes[{i}]");
            let path = match settings::mount_path(spec.path.as_deref().unwrap_or("/")) {
                Ok(p) => Some(p),
                Err(reason) => {
                    let value = format!("{:?}", spec.path.as_deref().unwrap_or("/"));
                    let p = InvalidOption::new(format!("{section}.path"), value, reason);
                    problems.push(src.invalid(doc, &p));
                    None
                }
            };
            if let Some(ca) = spec.ca_file.take() {
                spec.ca_file = Some(base.join(ca));
            }
            let route = spec
                .build(&pool)
                .and_then(|route| {
                    // The pool reads `ca_file`; checking it here makes `--check` catch a missing file.
                    reverseit_pool::Target::from_route(&route).map(|_| route)
                })
                .map_err(|e| problems.extend(src.config_error(doc, &e.in_section(&section))));
            if let (Some(path), Ok(route)) = (path, route) {
                if let Some(j) = routes.iter().position(|m| m.path == path) {
                    let p = InvalidOption::new(
                        format!("{section}.path"),
                        format!("{path:?}"),
                        format!("routes[{j}] is already mounted there"),
                    );
                    problems.push(src.invalid(doc, &p));
                }
                routes.push(Mount { path, route });
            }
        }

        if !problems.is_empty() {
            return Err(BadConfig { problems });
        }
        Ok(Settings {
            listen,
            shutdown_timeout,
            tls,
            limits,
            pool,
            routes,
            demo: false,
        })
    }
}

fn server_limits(s: &ServerSpec, fail: &mut impl FnMut(&str, String, &str)) -> ServerLimits {
    let mut limits = ServerLimits::default();
    if let Some(ms) = s.header_read_timeout {
        if ms == 0 {
            fail(
                "server.header_read_timeout",
                "0".into(),
                "a timeout must be at least 1 ms",
            );
        } else {
            limits.header_read_timeout = Duration::from_millis(ms);
        }
    }
    if let Some(n) = s.max_connections {
        if n == 0 {
            fail("server.max_connections", "0".into(), "must be at least 1");
        } else if n > MAX_CONNECTIONS_CEILING {
            fail(
                "server.max_connections",
                n.to_string(),
                "must be at most 100000000 (far beyond any file-descriptor limit)",
            );
        } else {
            limits.max_connections = n;
        }
    }
    if let Some(n) = s.http2_max_concurrent_streams {
        if n == 0 {
            fail(
                "server.http2_max_concurrent_streams",
                "0".into(),
                "must be at least 1",
            );
        } else {
            limits.http2_max_concurrent_streams = n;
        }
    }
    if let Some(n) = s.max_header_list_size {
        if n < 1024 {
            fail(
                "server.max_header_list_size",
                n.to_string(),
                "must be at least 1024 bytes",
            );
        } else {
            limits.max_header_list_size = n;
        }
    }
    limits
}

/// The file's text and name, to turn byte offsets into `file:line` messages.
struct Source<'a> {
    name: &'a str,
    text: &'a str,
}

impl Source<'_> {
    /// Deserializes one section, `name` in messages (`listen`, `pool`, `routes[2]`). Each error
    /// (toml's own, which carries the position) is reported with the key it concerns, and that key
    /// is set aside so the next error shows too: every bad key of a table is reported at once, and
    /// the section is returned without them, unless a key it cannot do without was among them.
    fn section<T: DeserializeOwned>(
        &self,
        name: &str,
        value: &Spanned<DeValue<'_>>,
        problems: &mut Vec<String>,
    ) -> Option<T> {
        let mut value = value.clone();
        let mut set_aside: Vec<String> = Vec::new();
        // In the file's order, whatever order serde met them in.
        let mut found: Vec<(usize, String)> = Vec::new();
        let spec = loop {
            let e = match T::deserialize(ValueDeserializer::from(value.clone())) {
                Ok(v) => break Some(v),
                Err(e) => e,
            };
            if set_aside
                .iter()
                .any(|k| e.message().starts_with(&format!("missing field `{k}`")))
            {
                // A required key of a wrong shape: already reported.
                break None;
            }
            let culprit = e.span().and_then(|span| culprit(value.get_ref(), &span));
            let at = e.span().map_or(usize::MAX, |span| span.start);
            // A table's key with its table (`pool_timeout` in `routes[2]`); a value of its own
            // (`listen = 5`) by the section's name.
            let key = Key {
                name: culprit.as_deref().unwrap_or(name),
                table: culprit.is_some().then_some(name),
            };
            found.push((at, self.toml_error(&e, Some(key))));
            let (Some(key), DeValue::Table(table)) = (culprit, value.get_mut()) else {
                break None;
            };
            table.remove(key.as_str());
            set_aside.push(key);
        };
        found.sort_by_key(|(at, _)| *at);
        problems.extend(found.into_iter().map(|(_, message)| message));
        spec
    }

    /// Deserializes `[[routes]]` one table at a time, so every bad route is reported.
    fn routes(
        &self,
        value: &Spanned<DeValue<'_>>,
        out: &mut Vec<(usize, RouteSpec)>,
        problems: &mut Vec<String>,
    ) {
        let Some(array) = value.get_ref().as_array() else {
            problems.push(self.at(
                value.span(),
                "`routes` must be an array of tables: write each route as a [[routes]] table",
            ));
            return;
        };
        for (i, item) in array.iter().enumerate() {
            if let Some(spec) = self.section::<RouteSpec>(&format!("routes[{i}]"), item, problems) {
                out.push((i, spec));
            }
        }
    }

    /// A toml error as `file:line:column: message`, plus the line itself; the message names
    /// `key` and its table.
    fn toml_error(&self, e: &toml::de::Error, key: Option<Key<'_>>) -> String {
        let mut msg = tidy(e.message().trim_end());
        if let Some(key) = key {
            let named = format!("`{}`", key.name);
            let place = key.table.map(|t| format!(" in {t}")).unwrap_or_default();
            let unknown = format!("unknown key {named}");
            if msg.starts_with(&unknown) {
                msg = msg.replacen(&unknown, &format!("{unknown}{place}"), 1);
            } else if !msg.contains(&named) {
                msg = format!("{named}{place}: {msg}");
            }
        }
        match e.span() {
            Some(span) => self.at(span, &msg),
            None => format!("{}: {msg}", self.name),
        }
    }

    /// Every problem of a core validation error, each at the line of the key it names.
    fn config_error(&self, doc: &DeTable<'_>, e: &ConfigError) -> Vec<String> {
        e.problems().iter().map(|p| self.invalid(doc, p)).collect()
    }

    fn invalid(&self, doc: &DeTable<'_>, p: &InvalidOption) -> String {
        match locate(doc, p.option()) {
            Some(span) => self.at(span, &p.to_string()),
            None => format!("{}: {p}", self.name),
        }
    }

    fn at(&self, span: Range<usize>, msg: &str) -> String {
        let start = span.start.min(self.text.len());
        let before = &self.text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..start].chars().count() + 1;
        let line_text = self.text[line_start..]
            .lines()
            .next()
            .unwrap_or("")
            .trim_end();
        format!(
            "{}:{line}:{column}: {msg}\n{line:>5} | {line_text}",
            self.name
        )
    }
}

/// The span of the value an option name points at: `listen`, `pool.pool_size`,
/// `routes[2].add_headers.x-api-key`, `server.max_connections`. Falls back to the nearest enclosing
/// table, so a message always gets a line when its section exists.
fn locate(doc: &DeTable<'_>, option: &str) -> Option<Range<usize>> {
    let (table, rest) = if let Some(r) = option.strip_prefix("routes[") {
        let (index, rest) = r.split_once("].")?;
        let index: usize = index.parse().ok()?;
        let item = find(doc, "routes")?.get_ref().as_array()?.get(index)?;
        (item, rest)
    } else if let Some((section, rest)) = option.split_once('.') {
        (find(doc, section)?, rest)
    } else {
        return find(doc, option).map(|v| v.span());
    };
    let Some(t) = table.get_ref().as_table() else {
        return Some(table.span());
    };
    if let Some(v) = t.get(rest) {
        return Some(v.span());
    }
    // `add_headers.x-api-key`: the inline table's entry, or the table itself; a key the table
    // lacks (a route's default `path`): the table.
    let Some((head, tail)) = rest.split_once('.') else {
        return Some(table.span());
    };
    let Some(v) = t.get(head) else {
        return Some(table.span());
    };
    Some(
        v.get_ref()
            .as_table()
            .and_then(|inner| inner.get(tail))
            .map_or(v.span(), |entry| entry.span()),
    )
}

/// A key an error concerns, and the table holding it (`routes[2]`, `pool`) unless it is a
/// top-level key.
struct Key<'a> {
    name: &'a str,
    table: Option<&'a str>,
}

/// The key of `table` whose line holds `span` (an error's position: a value of the wrong type, or
/// an unknown key itself).
fn culprit(table: &DeValue<'_>, span: &Range<usize>) -> Option<String> {
    table.as_table()?.iter().find_map(|(k, v)| {
        (k.span().start <= span.start && span.start < v.span().end.max(k.span().end))
            .then(|| k.get_ref().to_string())
    })
}

/// serde's unknown-field message lists every accepted key: 33 for a route. Suggest the closest
/// one instead when there is a close one, and keep the list only when it is short.
///
/// serde names Rust's integer types (`expected u64`); the file's reader knows whole numbers.
fn tidy(msg: &str) -> String {
    for rust in [
        ", expected u64",
        ", expected u32",
        ", expected usize",
        ", expected u16",
    ] {
        if let Some(head) = msg.strip_suffix(rust) {
            return format!("{head}, expected a whole number, 0 or more");
        }
    }
    let Some(rest) = msg.strip_prefix("unknown field `") else {
        return msg.to_owned();
    };
    let Some((field, expected)) = rest.split_once("`, expected one of ") else {
        // Two keys or none: serde's list is short enough to keep.
        return format!("unknown key `{rest}");
    };
    let names: Vec<&str> = expected.split(", ").map(|n| n.trim_matches('`')).collect();
    let closest = names
        .iter()
        .map(|n| (edit_distance(field, n), *n))
        .min()
        .filter(|(d, _)| *d <= 2 || (*d <= 3 && field.len() > 12));
    match closest {
        Some((_, name)) => format!("unknown key `{field}`: did you mean `{name}`?"),
        None if names.len() <= 8 => format!("unknown key `{field}`, expected one of {expected}"),
        None => format!("unknown key `{field}` (the keys are listed in docs/configuration.md)"),
    }
}

/// Levenshtein distance, for key suggestions; keys are short.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn find<'a, 'i>(doc: &'a DeTable<'i>, key: &str) -> Option<&'a Spanned<DeValue<'i>>> {
    doc.get(key)
}

#[cfg(test)]
mod tests;
