use std::io;
use std::time::Duration;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::sync::mpsc;

use super::*;

/// A client body fed by the test, frame by frame.
#[derive(Debug)]
struct ChanBody(mpsc::Receiver<Result<Frame<Bytes>, io::Error>>);

impl Body for ChanBody {
    type Data = Bytes;
    type Error = io::Error;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.0.poll_recv(cx)
    }
}

fn chan() -> (mpsc::Sender<Result<Frame<Bytes>, io::Error>>, ChanBody) {
    let (tx, rx) = mpsc::channel(64);
    (tx, ChanBody(rx))
}

fn settings(buffer: usize, chunk: usize, max: u64) -> BodySettings {
    BodySettings {
        buffer_size: buffer,
        chunk_size: chunk,
        max_size: SizeLimit::Bytes(max),
        read_timeout: Duration::from_millis(1_000),
    }
}

async fn send(tx: &mpsc::Sender<Result<Frame<Bytes>, io::Error>>, data: &'static [u8]) {
    tx.send(Ok(Frame::data(Bytes::from_static(data))))
        .await
        .unwrap();
}

// LIM-4: a body within the buffer size, declared by Content-Length, is read whole first.
#[tokio::test]
async fn lim_4_small_declared_body_is_buffered() {
    let (tx, body) = chan();
    send(&tx, b"hello ").await;
    send(&tx, b"world").await;
    drop(tx);
    match prepare(body, Some(11), false, settings(64, 4, 1_000))
        .await
        .unwrap()
    {
        Prepared::Buffered(b) => assert_eq!(b.to_bytes(), "hello world"),
        Prepared::Streaming(_) => panic!("expected a buffered body"),
    }
}

// LIM-4: a chunked body that is all there at once is buffered, trailers included.
#[tokio::test]
async fn lim_4_small_chunked_body_with_trailers_is_buffered() {
    let (tx, body) = chan();
    send(&tx, b"abc").await;
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-sum", "6".parse().unwrap());
    tx.send(Ok(Frame::trailers(trailers))).await.unwrap();
    drop(tx);
    match prepare(body, None, false, settings(64, 4, 1_000))
        .await
        .unwrap()
    {
        Prepared::Buffered(b) => {
            assert_eq!(b.to_bytes(), "abc");
            assert_eq!(b.trailers().unwrap()["x-sum"], "6");
        }
        Prepared::Streaming(_) => panic!("expected a buffered body"),
    }
}

// LIM-4: a body over the buffer size streams in request_body_chunk_size pieces, bytes unchanged.
#[tokio::test]
async fn lim_4_large_body_streams_in_chunks() {
    let (tx, body) = chan();
    send(&tx, b"0123456789").await;
    send(&tx, b"abcdefghij").await;
    drop(tx);
    let prepared = prepare(body, None, false, settings(8, 4, 1_000))
        .await
        .unwrap();
    let Prepared::Streaming(mut stream) = prepared else {
        panic!("expected a streaming body");
    };
    let mut pieces = Vec::new();
    while let Some(frame) = stream.frame().await {
        pieces.push(frame.unwrap().into_data().unwrap());
    }
    assert!(pieces.iter().all(|p| p.len() <= 4), "{pieces:?}");
    assert_eq!(pieces.concat(), b"0123456789abcdefghij");
}

// LIM-4, H2-2: a streaming RPC call is not buffered: its first message reaches the backend before
// the client sends the next.
#[tokio::test]
async fn lim_4_interactive_call_streams_at_once() {
    let (tx, body) = chan();
    send(&tx, b"first").await;
    let prepared = prepare(body, None, true, settings(1_024, 1_024, 10_000))
        .await
        .unwrap();
    let Prepared::Streaming(mut stream) = prepared else {
        panic!("expected a streaming body");
    };
    let first = stream.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first, "first");
    send(&tx, b"second").await;
    let second = stream.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(second, "second");
    drop(tx);
    assert!(stream.frame().await.is_none());
}

// LIM-3: a streamed body crossing max_request_body_size fails with BodyTooLarge.
#[tokio::test]
async fn lim_3_streamed_body_over_limit() {
    let (tx, body) = chan();
    send(&tx, b"0123456789").await;
    let prepared = prepare(body, None, false, settings(4, 64, 15))
        .await
        .unwrap();
    let Prepared::Streaming(mut stream) = prepared else {
        panic!("expected a streaming body");
    };
    assert_eq!(
        stream
            .frame()
            .await
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap()
            .len(),
        10
    );
    send(&tx, b"0123456789").await;
    let err = stream.frame().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyTooLarge);
    assert!(
        stream.frame().await.is_none(),
        "the body ends after the error"
    );
}

// LIM-3: a buffered body crossing the limit fails before the backend is contacted.
#[tokio::test]
async fn lim_3_buffered_body_over_limit() {
    let (tx, body) = chan();
    send(&tx, b"0123456789").await;
    send(&tx, b"0123456789").await;
    let err = prepare(body, None, false, settings(64, 64, 15))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BodyTooLarge);
}

// TMO-4: a declared body that stops arriving fails with ClientBodyTimeout (408).
#[tokio::test(start_paused = true)]
async fn tmo_4_buffering_read_timeout() {
    let (tx, body) = chan();
    send(&tx, b"part").await;
    let err = prepare(body, Some(100), false, settings(1_024, 64, 1_000))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ClientBodyTimeout);
    drop(tx);
}

// TMO-4: the rolling timeout while streaming; a frame in time resets it.
#[tokio::test(start_paused = true)]
async fn tmo_4_streaming_read_timeout_is_rolling() {
    let (tx, body) = chan();
    send(&tx, b"0123456789").await;
    let prepared = prepare(body, Some(1_000), false, settings(4, 64, 10_000))
        .await
        .unwrap();
    let Prepared::Streaming(mut stream) = prepared else {
        panic!("expected a streaming body");
    };
    assert!(stream.frame().await.unwrap().is_ok());
    let feeder = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(900)).await;
        send(&tx, b"more").await;
        tx
    });
    // 900 ms < 1 s: the frame arrives in time.
    assert_eq!(
        stream.frame().await.unwrap().unwrap().into_data().unwrap(),
        "more"
    );
    let _tx = feeder.await.unwrap();
    let started = tokio::time::Instant::now();
    let err = stream.frame().await.unwrap().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ClientBodyTimeout);
    assert_eq!(started.elapsed(), Duration::from_millis(1_000));
}

// A client whose body breaks (reset, end of stream mid-body) is reported as gone.
#[tokio::test]
async fn broken_client_body_is_client_gone() {
    for kind in [io::ErrorKind::ConnectionReset, io::ErrorKind::UnexpectedEof] {
        let (tx, body) = chan();
        tx.send(Err(io::Error::new(kind, "broken"))).await.unwrap();
        let err = prepare(body, Some(10), false, settings(64, 64, 100))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ClientGone, "{kind:?}");
    }
}

// ERR-6: a body hyper's decoder refused (an invalid chunk size) is the client's bad request.
#[tokio::test]
async fn malformed_client_body_is_bad_request() {
    let (tx, body) = chan();
    let refused = io::Error::new(io::ErrorKind::InvalidInput, "Invalid chunk size line");
    tx.send(Err(refused)).await.unwrap();
    let err = prepare(body, Some(10), false, settings(64, 64, 100))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
}

// hyper wraps its decoder's I/O error in its own: the kind is found down the chain.
#[test]
fn malformed_is_found_in_the_error_chain() {
    #[derive(Debug)]
    struct Wrapper(io::Error);
    impl std::fmt::Display for Wrapper {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("body error")
        }
    }
    impl std::error::Error for Wrapper {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let refused = Wrapper(io::Error::new(io::ErrorKind::InvalidData, "bad chunk"));
    assert!(is_malformed(&refused));
    let reset = Wrapper(io::Error::new(io::ErrorKind::ConnectionReset, "reset"));
    assert!(!is_malformed(&reset));
    assert!(!is_malformed(&io::Error::other("other")));
}

// No body at all: nothing is read.
#[tokio::test]
async fn empty_body_is_buffered_empty() {
    let body = http_body_util::Empty::<Bytes>::new();
    match prepare(body, None, false, settings(64, 64, 100))
        .await
        .unwrap()
    {
        Prepared::Buffered(b) => assert!(b.len() == 0 && b.trailers().is_none()),
        Prepared::Streaming(_) => panic!("expected a buffered body"),
    }
}

// LIM-4: a chunked body that arrives over time is still buffered up to the buffer size.
#[tokio::test]
async fn lim_4_unknown_length_waits_for_a_small_body() {
    let (tx, body) = chan();
    send(&tx, b"first ").await;
    let feeder = tokio::spawn(async move {
        tokio::task::yield_now().await;
        send(&tx, b"second").await;
    });
    match prepare(body, None, false, settings(1_024, 64, 10_000))
        .await
        .unwrap()
    {
        Prepared::Buffered(b) => assert_eq!(b.to_bytes(), "first second"),
        Prepared::Streaming(_) => panic!("expected a buffered body"),
    }
    feeder.await.unwrap();
}

#[test]
fn interactive_content_types() {
    let mut h = http::HeaderMap::new();
    assert!(!is_interactive(&h));
    for (ct, want) in [
        ("application/grpc", true),
        ("application/grpc+proto", true),
        ("application/grpc-web+proto", true),
        ("application/connect+json", true),
        ("application/json", false),
        ("text/plain", false),
    ] {
        h.insert(http::header::CONTENT_TYPE, ct.parse().unwrap());
        assert_eq!(is_interactive(&h), want, "{ct}");
    }
}
