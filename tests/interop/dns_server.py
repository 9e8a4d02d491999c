"""A DNS server on 127.0.0.1 for tests: a stand-in for the public DNS that serves
`_dnsaddr.bootstrap.libp2p.io` (no internet here). It answers UDP queries from a zone given as
{name: [("TXT", "dnsaddr=/ip4/..."), ("A", "127.0.0.1"), ...]}; unknown names get NXDOMAIN.
Messages are parsed and built with dnspython (the same library the node resolves with, but
the wire format is the standard one; the node's side is dnspython's asyncresolver client)."""

from __future__ import annotations

import dns.message
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import trio


class LocalDns:
    def __init__(self, zone: dict[str, list[tuple[str, str]]], ttl: int = 300, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.zone = {k.rstrip(".").lower(): v for k, v in zone.items()}
        self.ttl = ttl
        self.host = host
        self.port = port
        self.queries: list[tuple[str, str]] = []  # (name, type) as asked, for assertions
        self.silent = False  # True: swallow queries (an unreachable DNS)
        self.received = 0  # packets, answered or not

    def answer(self, wire: bytes) -> bytes | None:
        try:
            q = dns.message.from_wire(wire)
        except Exception:
            return None
        resp = dns.message.make_response(q)
        for question in q.question:
            name = question.name.to_text().rstrip(".").lower()
            rdtype = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, rdtype))
            records = self.zone.get(name)
            if records is None:
                resp.set_rcode(dns.rcode.NXDOMAIN)
                continue
            values = [v for t, v in records if t == rdtype]
            if values:
                texts = [f'"{v}"' if rdtype == "TXT" else v for v in values]
                resp.answer.append(dns.rrset.from_text_list(question.name, self.ttl, dns.rdataclass.IN,
                                                            question.rdtype, texts))
        return resp.to_wire()

    async def serve(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        with sock:
            await sock.bind((self.host, self.port))
            self.port = sock.getsockname()[1]
            task_status.started(self.port)
            while True:
                data, peer = await sock.recvfrom(4096)
                self.received += 1
                if self.silent:
                    continue
                out = self.answer(data)
                if out is not None:
                    await sock.sendto(out, peer)

    @property
    def server(self) -> str:
        return f"{self.host}:{self.port}"


async def _main(zone_file: str, host: str, port: int) -> None:
    """As a process (inside a network namespace, tests/interop/test_js_grid.py): one JSON line
    {"op": "ready", "port": N} once bound, then one {"op": "query", "name", "type"} per question."""
    import json

    class Reporting(LocalDns):
        def answer(self, wire: bytes) -> bytes | None:
            seen = len(self.queries)
            out = super().answer(wire)
            for name, rdtype in self.queries[seen:]:
                print(json.dumps({"op": "query", "name": name, "type": rdtype}), flush=True)
            return out

    zone = {k: [tuple(r) for r in v] for k, v in json.loads(open(zone_file).read()).items()}
    dns = Reporting(zone, host=host, port=port)
    async with trio.open_nursery() as n:
        await n.start(dns.serve)
        print(json.dumps({"op": "ready", "port": dns.port}), flush=True)


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--zone", required=True, help="JSON {name: [[type, value], ...]}")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=53)
    args = ap.parse_args()
    trio.run(_main, args.zone, args.host, args.port)
