#!/usr/bin/python3
"""A unix-socket proxy that makes a server slow, for mirror fault tests.

    slow_socket.py --listen SOCK --upstream SOCK [--delay-ms 200]

Forwards every connection on --listen to --upstream byte for byte, holding
each chunk the upstream sends back for --delay-ms before passing it on (in
order, without limiting throughput), so every call through it takes that
much longer: containerd on a loaded node. Runs until killed.
"""
import argparse
import asyncio
import os
import time


async def pump(reader, writer, delay):
    queue = asyncio.Queue()

    async def read():
        while True:
            data = await reader.read(65536)
            await queue.put((time.monotonic() + delay, data))
            if not data:
                return

    async def write():
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                writer.close()
                return
            writer.write(data)
            await writer.drain()

    try:
        await asyncio.gather(read(), write())
    except (ConnectionError, OSError):
        writer.close()


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--listen", required=True)
    p.add_argument("--upstream", required=True)
    p.add_argument("--delay-ms", type=float, default=200)
    args = p.parse_args()
    delay = args.delay_ms / 1000.0

    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(args.upstream)
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(pump(client_reader, up_writer, 0),
                             pump(up_reader, client_writer, delay),
                             return_exceptions=True)

    if os.path.exists(args.listen):
        os.unlink(args.listen)
    server = await asyncio.start_unix_server(handle, path=args.listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
