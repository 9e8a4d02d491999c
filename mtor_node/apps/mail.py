"""The mail app: how many unread messages, and the newest ones' senders and subjects, read aloud.

IMAP over TLS (stdlib imaplib in a worker thread) with an app password from the config. The
mailbox is opened read-only and only headers are fetched with BODY.PEEK, so nothing is marked
read; nothing is written anywhere: the answer lives only in the reply.
"""

from __future__ import annotations

import email.header
import email.utils
import imaplib
import re
import socket
import ssl

import trio

from .base import Answer, App, AppError, Config

TIMEOUT_S = 15.0
MAX_LIST = 20  # messages read aloud at most, whatever the config says
MAX_HEADER = 300  # characters of a subject or sender kept
NUMBER = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}


def _decode(raw: str) -> str:
    """RFC 2047 words ("=?utf-8?q?...?=") to text; control characters out, length bounded."""
    try:
        text = str(email.header.make_header(email.header.decode_header(raw)))
    except (ValueError, LookupError, UnicodeError):
        text = raw
    return re.sub(r"[\x00-\x1f\x7f]+", " ", text).strip()[:MAX_HEADER]


def _sender(raw: str) -> str:
    name, addr = email.utils.parseaddr(_decode(raw))
    return name or addr or "unknown sender"


def _headers(blob: bytes) -> dict[str, str]:
    msg = email.message_from_bytes(blob[:64 * 1024])
    return {"from": _sender(msg.get("From", "")), "subject": _decode(msg.get("Subject", "")) or "no subject"}


def _how_many(text: str, default: int) -> int:
    m = re.search(r"\b(\d{1,2}|" + "|".join(NUMBER) + r")\b", text.lower())
    n = (int(m.group(1)) if m.group(1).isdigit() else NUMBER[m.group(1)]) if m else default
    return max(1, min(MAX_LIST, n))


def _fetch_unread(config: Config, limit: int) -> tuple[int, list[dict]]:
    """Blocking: runs in a worker thread."""
    try:
        ctx = ssl.create_default_context(cafile=config.get("mail.ca_file") or None)
    except (OSError, ssl.SSLError) as e:
        raise AppError("not_configured", f"cannot use mail.ca_file {config.get('mail.ca_file')!r}: {e}") from None
    try:
        imap = imaplib.IMAP4_SSL(config["mail.host"], int(config["mail.port"]), ssl_context=ctx, timeout=TIMEOUT_S)
    except ssl.SSLError as e:
        raise AppError("failed", f"TLS to {config['mail.host']} failed: {e.reason or e}") from None
    except (OSError, socket.timeout) as e:
        raise AppError("offline", f"cannot reach the mail server {config['mail.host']}:{config['mail.port']} ({e})") from None
    try:
        try:
            imap.login(config["mail.user"], config["mail.password"])
        except imaplib.IMAP4.error:
            raise AppError("failed", "the mail server refused the login (check mail.user and the app password)") from None
        typ, _ = imap.select(_quote(config.get("mail.mailbox") or "INBOX"), readonly=True)
        if typ != "OK":
            raise AppError("failed", f"no mailbox {config.get('mail.mailbox')!r} on the mail server")
        typ, data = imap.search(None, "UNSEEN")
        ids = data[0].split() if typ == "OK" and data and data[0] else []
        ids = [i for i in ids if i.isdigit()]
        newest = sorted(ids, key=int, reverse=True)[:limit]
        out = []
        for i in newest:
            typ, parts = imap.fetch(i.decode(), "(BODY.PEEK[HEADER.FIELDS (FROM SUBJECT)])")
            blob = next((p[1] for p in parts or [] if isinstance(p, tuple) and len(p) == 2), None)
            if typ == "OK" and isinstance(blob, bytes):
                out.append(_headers(blob))
        return len(ids), out
    except (imaplib.IMAP4.error, OSError) as e:
        raise AppError("failed", f"the mail server broke off: {e}") from None
    finally:
        try:
            imap.logout()
        except (imaplib.IMAP4.error, OSError):
            pass


def _quote(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


async def unread(text: str, config: Config) -> Answer:
    limit = _how_many(text, int(config.get("mail.read_count") or 5))
    count, msgs = await trio.to_thread.run_sync(_fetch_unread, config, limit, abandon_on_cancel=True)
    if count == 0:
        return Answer("No unread mail.", "You have no unread mail.", {"unread": 0, "messages": []})
    head = f"You have {count} unread message{'s' if count != 1 else ''}."
    lines = [f"From {m['from']}: {m['subject']}" for m in msgs]
    said = head + (" The newest: " if len(msgs) > 1 else " ") + ". ".join(lines) + "."
    return Answer(head + "\n" + "\n".join(lines), said, {"unread": count, "messages": msgs})


APP = App(
    name="mail",
    triggers=("mail", "email", "e-mail", "gmail", "inbox"),
    description="count your unread mail and read the newest senders and subjects aloud (IMAP over TLS)",
    handler=unread,
    configured=lambda c: bool(c.get("mail.host") and c.get("mail.user") and c.get("mail.password")),
    private=True,
)
