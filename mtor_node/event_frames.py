"""The broker's events <-> `/mtor/intent/2` frames (docs/protocol.md §5), both directions:

  chunk{text} / chunk{audio}  <->  chunk{data: str | bytes}
  progress{step, total}       <->  progress{done, total}
  queued{position}            <->  progress{position}
  result{...}                 <->  result{output: {...}, units, receipt}
"""

from __future__ import annotations

from .intents import Intent


def intent_inputs(intent: Intent) -> dict:
    """The inputs of an intent as the wire and the kind registry see them."""
    return {k: v for k, v in (("messages", intent.messages), ("prompt", intent.prompt),
                              ("image", intent.image), ("audio", intent.audio), ("texts", intent.texts)) if v is not None}


def to_frame(event: dict) -> dict | None:
    """A local broker event as the frame sent to the requesting peer (None: not sent)."""
    t = event["type"]
    if t == "chunk":
        return {"type": "chunk", "data": event["text"] if "text" in event else event.get("audio", b"")}
    if t == "progress":
        return {"type": "progress", "done": event.get("step", 0), "total": event.get("total")}
    if t == "queued":
        return {"type": "progress", "done": 0, "position": event.get("position") or 0}
    if t == "result":
        output = {k: v for k, v in event.items() if k not in ("type", "id", "units", "peer", "duration_ms",
                                                              "ledger_receipt")}
        frame = {"type": "result", "output": output, "units": int(event.get("units", 0) or 0)}
        if "ledger_receipt" in event:
            frame["receipt"] = event["ledger_receipt"]  # a typed field of the result frame (federation/frames.py)
        return frame
    if t == "error":
        return {"type": "error", "code": event["code"], "message": event["message"]}
    return None  # started: local bookkeeping only


def from_frame(frame: dict) -> dict | None:
    """A worker's frame as the event the local broker emits (None: nothing to emit)."""
    t = frame["type"]
    if t == "chunk":
        data = frame["data"]
        return {"type": "chunk", "text": data} if isinstance(data, str) else {"type": "chunk", "audio": data, "format": "wav"}
    if t == "progress":
        if frame.get("position"):
            return {"type": "queued", "position": frame["position"], "remote": True}
        return {"type": "progress", "step": frame.get("done", 0), "total": frame.get("total")}
    if t == "accepted":
        return {"type": "accepted", "price": frame.get("price", 0)}
    if t == "failover":
        return {"type": "failover", "from": frame.get("from"), "code": frame.get("code"), "message": frame.get("message")}
    return None
