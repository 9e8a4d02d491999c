"""Job receipts: what a worker signs after it delivers a job.

A receipt binds job id, both parties, intent kind, model, units of work, the price in
micro-tokens and the sha256 of the delivered result. The requester checks it and pays by
quoting the whole receipt inside its `pay` entry, so anyone holding the pay entry can check that
the worker really claimed that price for that job. Signed over DOMAIN_RECEIPT + canonical bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from .encoding import MAX_AMOUNT, canonical, check_dict, get_bytes, get_int, get_str, unpack
from .errors import BadSignature, DecodeError
from .keys import DOMAIN_RECEIPT, Signer, verify_sig

RECEIPT_FIELDS = {"v", "job", "requester", "worker", "kind", "model", "units", "price", "result", "time", "sig"}
MAX_RECEIPT_BYTES = 2048
MAX_JOB_ID = 128


@dataclass(frozen=True)
class Receipt:
    job: str
    requester: bytes  # 32-byte pubkey of the payer
    worker: bytes  # 32-byte pubkey of the payee (signer)
    kind: str  # intent kind: chat, vision, imagine, transcribe, speak
    model: str
    units: int  # e.g. output tokens, images, audio ms: meaning per kind, priced by the worker
    price: int  # micro-tokens
    result: bytes  # sha256 of the delivered result
    time: int  # ms since epoch
    sig: bytes = field(default=b"", repr=False)

    def unsigned_dict(self) -> dict[str, Any]:
        return {
            "v": 1,
            "job": self.job,
            "requester": self.requester,
            "worker": self.worker,
            "kind": self.kind,
            "model": self.model,
            "units": self.units,
            "price": self.price,
            "result": self.result,
            "time": self.time,
        }

    def to_dict(self) -> dict[str, Any]:
        d = self.unsigned_dict()
        d["sig"] = self.sig
        return d

    def to_bytes(self) -> bytes:
        return canonical(self.to_dict())

    def signed_by(self, signer: Signer) -> "Receipt":
        if signer.pubkey != self.worker:
            raise ValueError("a receipt is signed by its worker")
        return replace(self, sig=signer.sign(DOMAIN_RECEIPT, canonical(self.unsigned_dict())))

    def verify(self) -> None:
        """Raise BadSignature unless the worker signed exactly these fields."""
        if not verify_sig(self.worker, DOMAIN_RECEIPT, canonical(self.unsigned_dict()), self.sig):
            raise BadSignature(f"receipt for job {self.job!r}: worker signature does not verify")

    @classmethod
    def from_dict(cls, d: Any, path: str = "") -> "Receipt":
        """Strict decode from a network dict: exact fields, types and bounds (no signature check)."""
        check_dict(d, path, RECEIPT_FIELDS)
        if get_int(d, "v", path) != 1:
            raise DecodeError(f"{path}.v" if path else "v", "unsupported receipt version")
        return cls(
            job=get_str(d, "job", path, MAX_JOB_ID, 1),
            requester=get_bytes(d, "requester", path, 32),
            worker=get_bytes(d, "worker", path, 32),
            kind=get_str(d, "kind", path, 32, 1),
            model=get_str(d, "model", path, 256),
            units=get_int(d, "units", path),
            price=get_int(d, "price", path, 0, MAX_AMOUNT),
            result=get_bytes(d, "result", path, 32),
            time=get_int(d, "time", path),
            sig=get_bytes(d, "sig", path, 64),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> "Receipt":
        return cls.from_dict(unpack(data, MAX_RECEIPT_BYTES))
