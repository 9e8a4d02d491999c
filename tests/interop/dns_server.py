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
    def __init__(self, zone: dict[str, list[tuple[str, str]]], ttl: int = 300) -> None:
        self.zone = {k.rstrip(".").lower(): v for k, v in zone.items()}
        self.ttl = ttl
        self.port = 0
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
            await sock.bind(("127.0.0.1", 0))
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
        return f"127.0.0.1:{self.port}"
