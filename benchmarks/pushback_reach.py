"""How long until a writer can feel TCP's pushback (issue 52, point 6).

    .venv/bin/python -m benchmarks.pushback_reach
    .venv/bin/python -m benchmarks.pushback_reach --weddings 50 --sustainable 450

The overload benchmark's writers (``benchmarks.product --overload``) behave as a browser
that watches ``bufferedAmount``: an update that falls due while the writer's socket holds
unsent bytes of its own is not sent (``loadgen.backed_up``). A server that stops reading a
connection pushes back on its writer only once the kernel's buffers between them are full:
the server's receive buffer and the writer's send buffer, both autotuned by Linux.

This measures that capacity on 127.0.0.1 in the product's own updates: a listener accepts
and never reads, a client writes the product's guest edits (each a masked WebSocket binary
frame, as a browser sends it) until its transport keeps bytes of its own, and the count is
printed with what it means at each overload factor: a writer of ``--weddings`` x
``--members`` sending its share of ``factor`` x ``--sustainable`` updates/s fills the
buffers after that many seconds. No server of the project runs; nothing is timed but
arithmetic.
"""

from __future__ import annotations

import argparse
import asyncio
import os

from benchmarks.product import OVERLOAD_FACTORS, domain_updates
from crdt_server.codec.websocket_frames import Opcode, encode_frame

__all__ = ["kernel_capacity"]


async def kernel_capacity(frames: list[bytes], limit: int = 2_000_000) -> tuple[int, int]:
    """How many of ``frames`` (cycled) the kernel takes from a writer whose peer never
    reads, before the writer's transport keeps bytes of its own; and their bytes."""
    held: list[asyncio.StreamWriter] = []

    async def accepted(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # never read

    server = await asyncio.start_server(accepted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    count = size = 0
    try:
        while writer.transport.get_write_buffer_size() == 0 and count < limit:
            data = frames[count % len(frames)]
            writer.write(data)
            count += 1
            size += len(data)
            if count % 256 == 0:
                await asyncio.sleep(0)  # let the kernel move what it can
    finally:
        writer.transport.abort()
        for w in held:
            w.transport.abort()
        server.close()
        await server.wait_closed()
    return count, size


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weddings", type=int, default=1000)
    p.add_argument("--members", type=int, default=10)
    p.add_argument("--sustainable", type=float, default=450.0,
                   help="updates/s the steps sustained (%(default)g)")  # fmt: skip
    args = p.parse_args()
    # A writer's first update adds its guest; the later ones, the steady state, change it.
    updates = [message for message, _ in domain_updates("guests", 1234, 200)[1:]]
    # Each a masked binary frame, as a browser sends it (a client masks every frame).
    frames = [encode_frame(Opcode.BINARY, u, mask=os.urandom(4)) for u in updates]
    count, size = asyncio.run(kernel_capacity(frames))
    mean = size / count
    print(
        f"the kernel took {count:,} guest edits ({size / 1024:,.0f} KiB, {mean:.0f} bytes a "
        f"frame) from a writer whose server never read, before the writer kept any itself"
    )
    writers = args.weddings * args.members
    for factor in OVERLOAD_FACTORS:
        rate = factor * args.sustainable / writers
        print(
            f"{factor:g}x {args.sustainable:g}/s over {writers:,} writers: {rate:.2f} updates/s "
            f"each, pushed back after {count / rate:,.0f} s"
        )


if __name__ == "__main__":
    main()
