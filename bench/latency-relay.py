#!/usr/bin/env python3
"""A TCP relay that adds network latency, for benchmarks on loopback.

    latency-relay.py RTT_MS LISTEN_PORT TARGET_PORT ADDRESS...

Listens on ADDRESS:LISTEN_PORT for every ADDRESS and relays each connection to
ADDRESS:TARGET_PORT, holding every chunk back RTT_MS/2 in each direction (order kept),
so a round trip costs RTT_MS as it does between a laptop and a far region. Bandwidth
is not limited. Not a test tool: bench/remote-vs-clush uses it.
"""
import asyncio
import sys
import time


async def pipe(reader, writer, delay):
    queue = asyncio.Queue()

    async def send():
        while True:
            due, data = await queue.get()
            if data is None:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            writer.write(data)
            await writer.drain()
        try:
            writer.write_eof()
        except OSError:
            pass

    sender = asyncio.create_task(send())
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            queue.put_nowait((time.monotonic() + delay, data))
    except OSError:
        pass
    queue.put_nowait((0, None))
    try:
        await sender
    except OSError:
        pass


def handler(address, port, delay):
    async def handle(client_reader, client_writer):
        try:
            server_reader, server_writer = await asyncio.open_connection(address, port)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pipe(client_reader, server_writer, delay),
                             pipe(server_reader, client_writer, delay))
        for w in (client_writer, server_writer):
            w.close()
    return handle


async def main():
    rtt_ms, listen, target = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
    delay = rtt_ms / 2000.0
    servers = [await asyncio.start_server(handler(a, target, delay), a, listen, backlog=512)
               for a in sys.argv[4:]]
    print(f"latency-relay: {len(servers)} addresses, {rtt_ms:g} ms round trip", file=sys.stderr)
    await asyncio.gather(*(s.serve_forever() for s in servers))


if __name__ == "__main__":
    asyncio.run(main())
