"""HTTP backend for `cargo xtask test-e2e`: an ASGI app served by hypercorn (HTTP/1.1, h2c, h2 over TLS).

Run as `hypercorn --workers 0 e2e.http_backend:app ...` with E2E_BLOB naming the big test file.
Answers are plain text, one `key value` pair a line, so the Rust side parses them without JSON.

- any method `/echo...`: what the request looked like here (method, path, query, version, scheme,
  body length and SHA-256, then every header as `header name: value`, in order).
- `GET /blob`: the file E2E_BLOB, with its Content-Length, in 256 KiB pieces.
- `GET /bytes?n=N`: N bytes of `x`, with their Content-Length.
- `GET /sse?n=N&gap=MS`: N server-sent events, MS milliseconds apart.
- `GET /slow?ms=MS`: `slept MS` after MS milliseconds (for the SIGTERM drain).
- `GET /trailers`: a body, then the trailer `x-checksum: e2e-trailer` where the server can send
  trailers (HTTP/2, the client having sent `te: trailers`).
- anything else: 404.
"""

import asyncio
import hashlib
import os
from urllib.parse import parse_qs


async def _body(receive):
    digest, length = hashlib.sha256(), 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunk = message.get("body", b"")
        digest.update(chunk)
        length += len(chunk)
        if not message.get("more_body", False):
            return length, digest.hexdigest()


async def _send(send, status, body, content_type=b"text/plain", extra=()):
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + list(extra)})
    await send({"type": "http.response.body", "body": body})


async def echo(scope, receive, send):
    length, sha = await _body(receive)
    lines = [
        f"method {scope['method']}",
        f"path {scope['raw_path'].decode('latin-1')}",
        f"query {scope['query_string'].decode('latin-1')}",
        f"http_version {scope['http_version']}",
        f"scheme {scope['scheme']}",
        f"body_len {length}",
        f"body_sha256 {sha}",
    ]
    for name, value in scope["headers"]:
        lines.append(f"header {name.decode('latin-1')}: {value.decode('latin-1')}")
    await _send(send, 200, ("\n".join(lines) + "\n").encode("latin-1"))


async def blob(scope, receive, send):
    path = os.environ["E2E_BLOB"]
    size = os.path.getsize(path)
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    with open(path, "rb") as f:
        while True:
            chunk = f.read(256 * 1024)
            if not chunk:
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def sse(scope, receive, send, n, gap_ms):
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for i in range(n):
        if i:
            await asyncio.sleep(gap_ms / 1000)
        event = f"id: {i}\nevent: tick\ndata: event {i}\n\n".encode()
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


async def trailers(scope, receive, send):
    can = "http.response.trailers" in scope.get("extensions", {})
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers, "trailers": can})
    await send({"type": "http.response.body", "body": b"body before trailers\n"})
    if can:
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"x-checksum", b"e2e-trailer")],
                "more_trailers": False,
            }
        )


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    query = {k: v[-1] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path.startswith("/echo"):
        await echo(scope, receive, send)
    elif path == "/blob":
        await blob(scope, receive, send)
    elif path == "/bytes":
        await _send(send, 200, b"x" * int(query.get("n", "0")), b"application/octet-stream")
    elif path == "/sse":
        await sse(scope, receive, send, int(query.get("n", "5")), int(query.get("gap", "300")))
    elif path == "/trailers":
        await trailers(scope, receive, send)
    elif path == "/slow":
        ms = int(query.get("ms", "1000"))
        await asyncio.sleep(ms / 1000)
        await _send(send, 200, f"slept {ms}\n".encode())
    else:
        await _send(send, 404, b"not found\n")
