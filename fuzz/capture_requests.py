"""Captures real clients' Kafka requests as seed inputs for the `request` fuzz target.

A proxy between clients and a ketch broker: every request frame a client sends (its body, after
the 4-byte length) is written to OUT/<tag>-<api key>-v<version>-<hash>, then forwarded. Run
the broker with `advertised.listeners` pointing at the proxy so clients reconnect through it
after bootstrapping (see fuzz/capture_seed_corpus.sh).

    python3 fuzz/capture_requests.py --listen 19092 --upstream 127.0.0.1:19093 \\
        --out fuzz/corpus/request --tag kcat
"""

import argparse
import asyncio
import hashlib
import os
import struct


async def pump_requests(reader, writer, out, tag):
    while True:
        head = await reader.readexactly(4)
        (length,) = struct.unpack(">i", head)
        body = await reader.readexactly(length)
        if length >= 4:
            api_key, version = struct.unpack(">hh", body[:4])
            digest = hashlib.sha256(body).hexdigest()[:12]
            name = f"{tag}-{api_key}-v{version}-{digest}"
            path = os.path.join(out, name)
            if not os.path.exists(path):
                with open(path, "wb") as f:
                    f.write(body)
        writer.write(head + body)
        await writer.drain()


async def pump_bytes(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", type=int, required=True)
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tag", required=True)
    args = ap.parse_args()
    host, port = args.upstream.rsplit(":", 1)
    os.makedirs(args.out, exist_ok=True)

    async def handle(client_reader, client_writer):
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            client_writer.close()
            return
        tasks = [
            asyncio.create_task(pump_requests(client_reader, up_writer, args.out, args.tag)),
            asyncio.create_task(pump_bytes(up_reader, client_writer)),
        ]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        client_writer.close()
        up_writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", args.listen)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
