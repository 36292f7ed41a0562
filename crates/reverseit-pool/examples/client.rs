//! A standalone HTTP client from `reverseit-core` and `reverseit-pool` alone (`POOL-6`).
//!
//! ```text
//! cargo run -p reverseit-pool --example client -- http://127.0.0.1:8080/hello
//! ```
//!
//! GETs the URL and prints the status, then the body as it arrives. `https` URLs are verified
//! against the Mozilla roots and offered HTTP/2 and HTTP/1.1 by ALPN.

use std::io::Write;

use bytes::Bytes;
use http::Uri;
use http_body_util::{BodyExt, Empty};
use reverseit_core::{Backend, PoolConfig, Protocols};
use reverseit_pool::{Pool, Target};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let url = std::env::args()
        .nth(1)
        .ok_or("usage: client <http://host[:port]/path>")?;
    let uri: Uri = url.parse()?;
    let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
        return Err("the URL needs a scheme and a host".into());
    };
    let backend = Backend::parse(&format!("{scheme}://{authority}"))?;
    let protocols = if backend.is_tls() {
        Protocols::BOTH
    } else {
        Protocols::HTTP1
    };
    // One target per backend, one pool per program: both are meant to be reused.
    let target = Target::new(backend).protocols(protocols).build()?;
    let pool = Pool::new(PoolConfig::default());

    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let req = http::Request::get(path)
        .header("user-agent", "reverseit-pool-example")
        .body(Empty::<Bytes>::new())?;
    let res = pool.send(&target, req).await?;
    println!("{:?} {}", res.version(), res.status());

    let mut body = res.into_body();
    let mut out = std::io::stdout().lock();
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame?.into_data() {
            out.write_all(&data)?;
        }
    }
    out.flush()?;
    Ok(())
}
