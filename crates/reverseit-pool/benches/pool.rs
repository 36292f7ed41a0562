//! Round trips through `reverseit-pool` against hyper-util's legacy `Client`, in the same run, to
//! an in-process hyper backend on loopback: HTTP/1.1 and h2c, 1 and 64 requests in flight.
//!
//! ```text
//! cargo bench -p reverseit-pool -- --quick
//! ```
//!
//! After criterion's groups, an interleaved A/B run prints the ratio of the two clients' wall and
//! CPU times per scenario: alternating short blocks keeps the ratio meaningful on a machine whose
//! load drifts (criterion measures one client, then the other), and CPU time per request is what
//! a proxy pays (`docs/performance-notes.md`).
//!
//! Both clients get the same runtime, backend, request (`GET /`, empty body) and response
//! (`hello`, read to the end). The pool is sized so that 64 concurrent HTTP/1.1 requests do not
//! wait for connections, as the legacy client never does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group};
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Empty, Full};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use reverseit_core::{Backend, PoolConfig, Protocols};
use reverseit_pool::{Pool, Target};
use tokio::runtime::Runtime;
use tokio::task::JoinSet;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Proto {
    Http1,
    H2c,
}

impl Proto {
    fn name(self) -> &'static str {
        match self {
            Proto::Http1 => "http1",
            Proto::H2c => "h2c",
        }
    }
}

async fn backend(proto: Proto) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let svc = service_fn(|_req: Request<hyper::body::Incoming>| async {
                Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
            });
            tokio::spawn(async move {
                let io = TokioIo::new(tcp);
                let _ = match proto {
                    Proto::Http1 => {
                        hyper::server::conn::http1::Builder::new()
                            .serve_connection(io, svc)
                            .await
                    }
                    Proto::H2c => {
                        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                            .max_concurrent_streams(1000)
                            .serve_connection(io, svc)
                            .await
                    }
                };
            });
        }
    });
    addr
}

enum Subject {
    Ours(Pool, Target),
    /// The legacy client needs an absolute URI: parsed once, cloned per request (cheap, shared
    /// bytes), so its numbers do not include string parsing.
    Legacy(
        Box<Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>>,
        Uri,
    ),
}

impl Subject {
    async fn round_trip(&self) {
        let len = match self {
            Subject::Ours(pool, target) => {
                let req = Request::get("/").body(Empty::<Bytes>::new()).unwrap();
                let res = pool.send(target, req).await.unwrap();
                res.into_body().collect().await.unwrap().to_bytes().len()
            }
            Subject::Legacy(client, uri) => {
                let req = Request::get(uri.clone())
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let res = client.request(req).await.unwrap();
                res.into_body().collect().await.unwrap().to_bytes().len()
            }
        };
        assert_eq!(len, 5);
    }

    async fn concurrent(self: &Arc<Self>, n: usize) {
        let mut set = JoinSet::new();
        for _ in 0..n {
            let s = self.clone();
            set.spawn(async move { s.round_trip().await });
        }
        while let Some(r) = set.join_next().await {
            r.unwrap();
        }
    }
}

fn subjects(rt: &Runtime, proto: Proto) -> Vec<(&'static str, Arc<Subject>)> {
    let addr = rt.block_on(backend(proto));
    let backend = Backend::parse(&format!("http://{addr}")).unwrap();
    let protocols = match proto {
        Proto::Http1 => Protocols::HTTP1,
        Proto::H2c => Protocols::HTTP2,
    };
    let target = Target::new(backend).protocols(protocols).build().unwrap();
    let pool = Pool::new(PoolConfig::builder().pool_size(128).build().unwrap());
    let mut builder = Client::builder(TokioExecutor::new());
    builder.http2_only(proto == Proto::H2c);
    let legacy = builder.build_http::<Empty<Bytes>>();
    vec![
        ("reverseit-pool", Arc::new(Subject::Ours(pool, target))),
        (
            "hyper-util-legacy",
            Arc::new(Subject::Legacy(
                Box::new(legacy),
                format!("http://{addr}/").parse().unwrap(),
            )),
        ),
    ]
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for proto in [Proto::Http1, Proto::H2c] {
        let subjects = subjects(&rt, proto);
        for concurrency in [1usize, 64] {
            let mut group = c.benchmark_group(format!("{}/c{concurrency}", proto.name()));
            group.throughput(Throughput::Elements(concurrency as u64));
            group.measurement_time(Duration::from_secs(3));
            for (name, subject) in &subjects {
                // Warm the connections so the first samples do not time the connects.
                rt.block_on(subject.concurrent(concurrency));
                group.bench_with_input(BenchmarkId::from_parameter(name), subject, |b, s| {
                    b.to_async(&rt).iter(|| async move {
                        if concurrency == 1 {
                            s.round_trip().await
                        } else {
                            s.concurrent(concurrency).await
                        }
                    });
                });
            }
            group.finish();
        }
    }
}

/// CPU time used so far by every thread of this process (Linux: `/proc/self/task/*/schedstat`),
/// in nanoseconds; `None` elsewhere.
fn cpu_ns() -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Alternates blocks of round trips between the two clients and prints ours / legacy, for wall
/// time and for CPU time (the in-process backend's share is the same for both).
///
/// One thread (`current_thread`), so CPU time is the work done (client, backend, kernel) and not
/// idle workers spinning; other processes' load barely moves it.
fn interleaved() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "\ninterleaved A/B, reverseit-pool vs hyper-util-legacy (ratio < 1: ours is cheaper):"
    );
    for proto in [Proto::Http1, Proto::H2c] {
        let subjects = subjects(&rt, proto);
        for concurrency in [1usize, 64] {
            let block = if concurrency == 1 { 400 } else { 12 };
            let mut wall = [Duration::ZERO; 2];
            let mut cpu = [0u64; 2];
            for round in 0..12 {
                for (i, (_, s)) in subjects.iter().enumerate() {
                    let (start, cpu_start) = (tokio::time::Instant::now(), cpu_ns());
                    rt.block_on(async {
                        for _ in 0..block {
                            s.concurrent(concurrency).await;
                        }
                    });
                    // The first round warms connections and caches.
                    if round > 0 {
                        wall[i] += start.elapsed();
                        cpu[i] += cpu_ns().zip(cpu_start).map_or(0, |(b, a)| b - a);
                    }
                }
            }
            let n = (11 * block * concurrency) as f64;
            let us = |t: Duration| t.as_secs_f64() * 1e6 / n;
            let cpu_us = |ns: u64| ns as f64 / 1e3 / n;
            println!(
                "  {}/c{concurrency}: wall {:.1} vs {:.1} µs/req (ratio {:.2}); \
                 CPU {:.1} vs {:.1} µs/req (ratio {:.2})",
                proto.name(),
                us(wall[0]),
                us(wall[1]),
                wall[0].as_secs_f64() / wall[1].as_secs_f64(),
                cpu_us(cpu[0]),
                cpu_us(cpu[1]),
                cpu[0] as f64 / cpu[1].max(1) as f64,
            );
        }
    }
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    interleaved();
}
