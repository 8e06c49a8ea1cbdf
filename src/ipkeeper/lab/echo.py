"""`python -m ipkeeper.lab.echo NAME [PORT]`: a UDP echo that answers with the server's name.

Each answer leaves from the address the request was sent to (the VIP), so a
client sees which server answered its VIP. Run on every lab server by the
demo and the failover benchmark.
"""

from __future__ import annotations

import socket
import struct
import sys

IP_PKTINFO = 8
PKTINFO = struct.Struct("I4s4s")  # ifindex, spec_dst, addr
ECHO_PORT = 7000


def serve(name: str, port: int = ECHO_PORT) -> None:
    """Answer every datagram on `port` with `<its payload> <name>`, from its destination address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    sock.bind(("0.0.0.0", port))
    suffix = b" " + name.encode()
    while True:
        data, ancillary, _flags, peer = sock.recvmsg(2048, socket.CMSG_SPACE(PKTINFO.size))
        destination = b"\0\0\0\0"
        for level, kind, payload in ancillary:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                destination = PKTINFO.unpack(payload[: PKTINFO.size])[2]
        info = PKTINFO.pack(0, destination, b"\0\0\0\0")
        try:
            sock.sendmsg([data[:64] + suffix], [(socket.IPPROTO_IP, IP_PKTINFO, info)], 0, peer)
        except OSError:
            continue  # the address just left this server: nothing to answer from


def main() -> None:
    """Entry point."""
    serve(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else ECHO_PORT)


if __name__ == "__main__":
    main()
