//! Figures per scenario and proxy (medians over the rounds), their ratios to nginx from the same run,
//! and the markdown written to `docs/benchmarks.md`.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use super::Scenario;
use super::load::Load;
use super::peers::Proxy;

/// One measurement of one proxy in one scenario.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sample {
    Load {
        load: Load,
        /// Proxy CPU seconds per 10 000 requests (none for the direct runs).
        cpu_per_10k: Option<f64>,
        /// Proxy peak resident memory, KiB.
        peak_rss_kib: Option<u64>,
    },
    Idle {
        /// Resident memory added per idle WebSocket connection, KiB.
        kib_per_connection: f64,
        /// Resident memory with all connections open, KiB.
        rss_kib: u64,
        connections: usize,
    },
}

/// The medians of a proxy's samples in one scenario.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    cpu_ms_per_10k: Option<f64>,
    peak_rss_mib: Option<f64>,
    kib_per_connection: Option<f64>,
    rss_mib: Option<f64>,
    connections: usize,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn figures(samples: &[Sample]) -> Figures {
    let mut f = Figures::default();
    let loads: Vec<_> = samples
        .iter()
        .filter_map(|s| match s {
            Sample::Load {
                load,
                cpu_per_10k,
                peak_rss_kib,
            } => Some((load, cpu_per_10k, peak_rss_kib)),
            Sample::Idle { .. } => None,
        })
        .collect();
    if !loads.is_empty() {
        f.throughput = median(loads.iter().map(|l| l.0.per_sec()).collect()).unwrap_or(0.0);
        f.p50_ms = median(loads.iter().map(|l| l.0.p50_ms).collect()).unwrap_or(0.0);
        f.p99_ms = median(loads.iter().map(|l| l.0.p99_ms).collect()).unwrap_or(0.0);
        f.cpu_ms_per_10k = median(loads.iter().filter_map(|l| *l.1).map(|s| s * 1e3).collect());
        f.peak_rss_mib = median(
            loads
                .iter()
                .filter_map(|l| *l.2)
                .map(|k| k as f64 / 1024.0)
                .collect(),
        );
    }
    let idle: Vec<_> = samples
        .iter()
        .filter_map(|s| match s {
            Sample::Idle {
                kib_per_connection,
                rss_kib,
                connections,
            } => Some((*kib_per_connection, *rss_kib, *connections)),
            Sample::Load { .. } => None,
        })
        .collect();
    if !idle.is_empty() {
        f.kib_per_connection = median(idle.iter().map(|i| i.0).collect());
        f.rss_mib = median(idle.iter().map(|i| i.1 as f64 / 1024.0).collect());
        f.connections = idle[0].2;
    }
    f
}

fn ratio(value: Option<f64>, reference: Option<f64>) -> String {
    match (value, reference) {
        (Some(v), Some(r)) if r > 0.0 => format!("{:.2}", v / r),
        _ => "—".into(),
    }
}

fn num(value: Option<f64>, decimals: usize) -> String {
    value.map_or("—".into(), |v| format!("{v:.decimals$}"))
}

/// The results of a run, in the order measured.
pub(crate) type Results = Vec<(Scenario, Vec<(Proxy, Vec<Sample>)>)>;

/// The markdown tables: load scenarios, then idle WebSocket memory.
pub(crate) fn tables(results: &Results) -> String {
    let mut out = String::new();
    out.push_str(
        "| scenario | proxy | throughput | ×nginx | p50 ms | p99 ms | CPU ms / 10k req | ×nginx \
         | peak RSS MiB | ×nginx |\n|---|---|--:|--:|--:|--:|--:|--:|--:|--:|\n",
    );
    let mut idle_rows = String::new();
    for (scenario, proxies) in results {
        let all: Vec<(Proxy, Figures)> = proxies
            .iter()
            .filter(|(_, s)| !s.is_empty())
            .map(|(p, s)| (*p, figures(s)))
            .collect();
        let nginx = all
            .iter()
            .find(|(p, _)| *p == Proxy::Nginx)
            .map(|(_, f)| *f);
        for (proxy, f) in &all {
            if *scenario == Scenario::WsIdle {
                let _ = writeln!(
                    idle_rows,
                    "| {} | {} | {} | {} |",
                    proxy.name(),
                    num(f.kib_per_connection, 1),
                    ratio(
                        f.kib_per_connection,
                        nginx.and_then(|n| n.kib_per_connection)
                    ),
                    num(f.rss_mib, 1),
                );
                continue;
            }
            let _ = writeln!(
                out,
                "| {} | {} | {:.0} {} | {} | {:.3} | {:.3} | {} | {} | {} | {} |",
                scenario.name(),
                proxy.name(),
                f.throughput,
                scenario.unit(),
                ratio(Some(f.throughput), nginx.map(|n| n.throughput)),
                f.p50_ms,
                f.p99_ms,
                num(f.cpu_ms_per_10k, 1),
                ratio(f.cpu_ms_per_10k, nginx.and_then(|n| n.cpu_ms_per_10k)),
                num(f.peak_rss_mib, 1),
                ratio(f.peak_rss_mib, nginx.and_then(|n| n.peak_rss_mib)),
            );
        }
    }
    if !idle_rows.is_empty() {
        let connections = results
            .iter()
            .filter(|(s, _)| *s == Scenario::WsIdle)
            .flat_map(|(_, p)| p.iter())
            .find_map(|(_, s)| {
                s.iter().find_map(|s| match s {
                    Sample::Idle { connections, .. } => Some(*connections),
                    Sample::Load { .. } => None,
                })
            })
            .unwrap_or(0);
        let _ = write!(
            out,
            "\nIdle WebSocket connections ({connections} open through the proxy, each after one \
             echo):\n\n| proxy | KiB per idle connection | ×nginx | proxy RSS MiB, all open |\n\
             |---|--:|--:|--:|\n{idle_rows}"
        );
    }
    out
}

/// Markers around the generated part of `docs/benchmarks.md`; text outside them is kept.
const BEGIN: &str = "<!-- bench:begin (written by `cargo xtask bench`) -->";
const END: &str = "<!-- bench:end -->";

/// Writes `generated` between the markers of `path`, creating the file if needed.
pub(crate) fn write_doc(path: &Path, generated: &str) -> Result<(), String> {
    let block = format!("{BEGIN}\n{generated}{END}\n");
    let text = match fs::read_to_string(path) {
        Ok(old) => match (old.find(BEGIN), old.find(END)) {
            (Some(b), Some(e)) if b < e => {
                format!(
                    "{}{block}{}",
                    &old[..b],
                    old[e + END.len()..].trim_start_matches('\n')
                )
            }
            _ => format!("{old}\n{block}"),
        },
        Err(_) => format!("# Benchmarks\n\n{block}"),
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }

    #[test]
    fn keeps_text_around_the_markers() {
        let dir = std::env::temp_dir().join(format!("xtask-report-{}", std::process::id()));
        let path = dir.join("b.md");
        write_doc(&path, "one\n").unwrap();
        let first = fs::read_to_string(&path).unwrap();
        fs::write(&path, format!("intro\n{first}\nnotes\n")).unwrap();
        write_doc(&path, "two\n").unwrap();
        let second = fs::read_to_string(&path).unwrap();
        assert!(second.starts_with("intro\n"));
        assert!(second.contains("two\n") && !second.contains("one\n"));
        assert!(second.ends_with("notes\n"));
        let _ = fs::remove_dir_all(dir);
    }
}
