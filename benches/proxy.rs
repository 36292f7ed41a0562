//! Request round trips through the proxy beside the same requests sent straight to the backend, in
//! one run, on loopback: a small GET and a 1 MiB POST over a keep-alive HTTP/1.1 connection.
//!
//! The ratio proxied / direct is the proxy's overhead; compare it across commits, not the absolute
//! times (`cargo bench --bench proxy`).

use std::convert::Infallible;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use reverseit_core::{PoolConfig, RouteConfig};
use reverseit_hyper::ReverseProxy;
use reverseit_pool::Pool;
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Runtime;
use tokio::time::Instant;

const SMALL: &[u8] = &[b's'; 100];
const MIB: usize = 1 << 20;

/// A backend answering 100 bytes to GET and the received length to POST.
async fn backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let out = if body.is_empty() {
                        Bytes::from_static(SMALL)
                    } else {
                        Bytes::from(body.len().to_string())
                    };
                    Ok::<_, Infallible>(Response::new(Full::new(out)))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn proxy_in_front_of(backend: SocketAddr) -> SocketAddr {
    let route = RouteConfig::builder(format!("http://{backend}"))
        .build()
        .unwrap();
    let proxy = ReverseProxy::new(Pool::new(PoolConfig::default()), route).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(reverseit_hyper::serve(listener, proxy));
    addr
}

async fn connect(addr: SocketAddr) -> SendRequest<Full<Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    sender
}

async fn round_trip(sender: &mut SendRequest<Full<Bytes>>, req: Request<Full<Bytes>>) -> usize {
    sender.ready().await.unwrap();
    let res = sender.send_request(req).await.unwrap();
    res.into_body().collect().await.unwrap().to_bytes().len()
}

fn get(addr: SocketAddr) -> Request<Full<Bytes>> {
    Request::get("/small")
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn post(addr: SocketAddr, body: &Bytes) -> Request<Full<Bytes>> {
    Request::post("/upload")
        .header("host", addr.to_string())
        .body(Full::new(body.clone()))
        .unwrap()
}

/// `iters` round trips over one keep-alive connection, timed.
async fn run(addr: SocketAddr, iters: u64, make: impl Fn() -> Request<Full<Bytes>>) -> Duration {
    let mut sender = connect(addr).await;
    let start = Instant::now();
    for _ in 0..iters {
        black_box(round_trip(&mut sender, make()).await);
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().unwrap();
    let (backend_addr, proxy_addr) = rt.block_on(async {
        let b = backend().await;
        (b, proxy_in_front_of(b).await)
    });
    let upload = Bytes::from(vec![b'u'; MIB]);

    let mut group = c.benchmark_group("small_get");
    group.throughput(Throughput::Elements(1));
    for (name, addr) in [("direct", backend_addr), ("proxied", proxy_addr)] {
        group.bench_function(name, |b| {
            b.to_async(&rt)
                .iter_custom(|iters| run(addr, iters, move || get(addr)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("post_1mib");
    group.throughput(Throughput::Bytes(MIB as u64));
    group.sample_size(20);
    for (name, addr) in [("direct", backend_addr), ("proxied", proxy_addr)] {
        let upload = upload.clone();
        group.bench_function(name, |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let upload = upload.clone();
                run(addr, iters, move || post(addr, &upload))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
