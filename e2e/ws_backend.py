"""WebSocket echo backend for `cargo xtask test-e2e`, served by the `websockets` library.

    python ws_backend.py --port P [--tls-port Q --cert C --key K]

- a path ending in `/forbidden`: 403, no upgrade.
- any other path: echoes every text and binary message as it came. Subprotocols `chat.v2` and `chat.v1`
  are offered (the first the server lists wins); a client offering neither, or none, gets none.
- the text message `close:CODE:REASON`: the backend closes with that code and reason.
- `?id=X` on the URL: when the connection ends, the close code and reason the backend received are
  kept under X, and `GET /seen?id=X` (a plain HTTP request) answers `CODE REASON`.
No compression is offered, and messages of any size are accepted (Autobahn sends 16 MiB ones).
"""

import argparse
import asyncio
import ssl
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import serve

SUBPROTOCOLS = ["chat.v2", "chat.v1"]
seen = {}


def select_subprotocol(connection, offered):
    for p in SUBPROTOCOLS:
        if p in offered:
            return p
    return None


def process_request(connection, request):
    url = urlsplit(request.path)
    if url.path.endswith("/forbidden"):
        return connection.respond(HTTPStatus.FORBIDDEN, "forbidden by the backend\n")
    if url.path == "/seen":
        key = parse_qs(url.query).get("id", [""])[0]
        if key not in seen:
            return connection.respond(HTTPStatus.NOT_FOUND, "unknown id\n")
        return connection.respond(HTTPStatus.OK, seen[key] + "\n")
    return None


async def handler(ws):
    key = parse_qs(urlsplit(ws.request.path).query).get("id", [None])[0]
    try:
        async for message in ws:
            if isinstance(message, str) and message.startswith("close:"):
                _, code, reason = message.split(":", 2)
                await ws.close(int(code), reason)
                break
            await ws.send(message)
    except Exception:
        pass
    finally:
        await ws.wait_closed()
        if key is not None:
            rcvd = ws.protocol.close_rcvd
            seen[key] = f"{rcvd.code} {rcvd.reason}" if rcvd else "none"


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--tls-port", type=int)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    opts = dict(
        compression=None,
        max_size=None,
        max_queue=None,
        subprotocols=SUBPROTOCOLS,
        select_subprotocol=select_subprotocol,
        process_request=process_request,
        ping_interval=None,
    )
    servers = [await serve(handler, "127.0.0.1", args.port, **opts)]
    if args.tls_port:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(args.cert, args.key)
        servers.append(await serve(handler, "127.0.0.1", args.tls_port, ssl=ctx, **opts))
    print("ready", flush=True)
    await asyncio.Future()


if __name__ == "__main__":
    asyncio.run(main())
