"""WebSocket client checks for `cargo xtask test-e2e`, driven with the `websockets` library.

    python ws_client.py --url ws://127.0.0.1:P/ws --seen http://127.0.0.1:B [--ca CA.pem]

`--url` is the proxied WebSocket URL (ws:// or wss://; `--ca` trusts the test CA for wss://), and
`--seen` the backend's own address, where `GET /seen?id=X` tells the close code it received. Prints
`ok NAME` or `FAIL NAME: why` for each check and exits 1 if any failed. Catalogue ids in brackets.
"""

import argparse
import asyncio
import os
import ssl
import sys
import urllib.request

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

failures = 0


def report(name, ok, why=""):
    global failures
    if ok:
        print(f"ok {name}", flush=True)
    else:
        failures += 1
        print(f"FAIL {name}: {why}", flush=True)


async def check(name, coro):
    try:
        await asyncio.wait_for(coro, 10)
    except Exception as e:  # noqa: BLE001 - every failure becomes a report line
        report(name, False, f"{type(e).__name__}: {e}")


def seen(base, key):
    with urllib.request.urlopen(f"{base}/seen?id={key}", timeout=5) as r:
        return r.read().decode().strip()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--seen", required=True)
    ap.add_argument("--ca")
    args = ap.parse_args()
    ctx = None
    if args.url.startswith("wss:"):
        ctx = ssl.create_default_context(cafile=args.ca)
    sep = "&" if "?" in args.url else "?"
    url = args.url
    opts = dict(ssl=ctx, compression=None, max_size=None, ping_interval=None, open_timeout=5)

    async def echo():  # WS-5: text, binary, empty and 10 000-byte messages, ten rapid ones, in order
        async with connect(url, subprotocols=["chat.v1"], **opts) as ws:
            msgs = ["hello", b"\x00\x01\xfe\xff" * 64, "", b"", "x" * 10000, "héllo wörld ✓"]
            msgs += [f"rapid {i}" for i in range(10)]
            for m in msgs:
                await ws.send(m)
            for m in msgs:
                got = await ws.recv()
                if got != m or type(got) is not type(m):
                    raise AssertionError(f"sent {m!r:.40}, got {got!r:.40}")
            # A fragmented message arrives whole.
            await ws.send(["frag", "men", "ted"])
            got = await ws.recv()
            if got != "fragmented":
                raise AssertionError(f"fragmented message came back as {got!r}")
        report("echo text, binary, empty, 10 000 bytes, rapid, fragmented [WS-5]", True)

    async def ping():  # WS-5: exactly one pong per ping, with the ping's payload
        async with connect(url, subprotocols=["chat.v1"], **opts) as ws:
            waiters = [await ws.ping(f"p{i}".encode()) for i in range(5)]
            latencies = await asyncio.gather(*waiters)
            await ws.send("after pings")
            if await ws.recv() != "after pings":
                raise AssertionError("message after the pings not echoed")
        report(f"ping/pong x{len(latencies)} [WS-5]", True)

    async def subprotocols():  # WS-4: the client's offer reaches the backend, its choice comes back
        async with connect(url, subprotocols=["nope", "chat.v1"], **opts) as ws:
            if ws.subprotocol != "chat.v1":
                raise AssertionError(f"offered nope, chat.v1: negotiated {ws.subprotocol!r}")
        async with connect(url, subprotocols=["chat.v1", "chat.v2"], **opts) as ws:
            if ws.subprotocol != "chat.v2":
                raise AssertionError(f"offered chat.v1, chat.v2: negotiated {ws.subprotocol!r}")
        async with connect(url, subprotocols=["nope"], **opts) as ws:
            if ws.subprotocol is not None:
                raise AssertionError(f"offered nope: negotiated {ws.subprotocol!r}")
        report("subprotocols negotiated end to end [WS-4]", True)

    async def client_close():  # WS-6: the client's code and reason reach the backend
        key = f"c{os.getpid()}"
        async with connect(f"{url}{sep}id={key}", subprotocols=["chat.v1"], **opts) as ws:
            await ws.send("hi")
            await ws.recv()
            await ws.close(4002, "later")
        got = None
        for _ in range(50):
            try:
                got = await asyncio.to_thread(seen, args.seen, key)
                break
            except Exception:  # noqa: BLE001 - not recorded yet
                await asyncio.sleep(0.1)
        if got != "4002 later":
            raise AssertionError(f"client closed 4002 'later'; backend saw {got!r}")
        report("client close 4002 'later' reaches the backend [WS-6]", True)

    async def backend_close():  # WS-6: the backend's code and reason reach the client
        async with connect(url, subprotocols=["chat.v1"], **opts) as ws:
            await ws.send("close:4001:bye")
            try:
                await ws.recv()
                raise AssertionError("expected a close, got a message")
            except ConnectionClosed as e:
                rcvd = e.rcvd
                if rcvd is None or (rcvd.code, rcvd.reason) != (4001, "bye"):
                    raise AssertionError(f"backend closed 4001 'bye'; client got {rcvd}")
        report("backend close 4001 'bye' reaches the client [WS-6]", True)

    async def two_at_once():  # the original's "two simultaneous connections"
        async with connect(url, subprotocols=["chat.v1"], **opts) as a, connect(
            url, subprotocols=["chat.v1"], **opts
        ) as b:
            await a.send("to a")
            await b.send("to b")
            if (await b.recv(), await a.recv()) != ("to b", "to a"):
                raise AssertionError("crossed messages")
        report("two simultaneous connections [WS-5]", True)

    async def refused():  # WS-2: the backend's non-101 answer is relayed, the client not upgraded
        forbidden = url.rsplit("/", 1)[0] + "/forbidden"
        try:
            async with connect(forbidden, **opts):
                raise AssertionError("upgraded although the backend answered 403")
        except InvalidStatus as e:
            status = e.response.status_code
            body = e.response.body or b""
            if status != 403 or b"forbidden by the backend" not in body:
                raise AssertionError(f"expected the backend's 403, got {status} {body!r:.60}")
        report("backend 403 relayed without upgrade [WS-2]", True)

    for name, coro in [
        ("echo", echo()),
        ("ping", ping()),
        ("subprotocols", subprotocols()),
        ("client close", client_close()),
        ("backend close", backend_close()),
        ("two at once", two_at_once()),
        ("refused", refused()),
    ]:
        await check(name, coro)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    asyncio.run(main())
