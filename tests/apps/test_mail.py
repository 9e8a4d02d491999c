"""The mail app against a REAL IMAP server: dovecot-imapd on 127.0.0.1 with TLS (self-signed
certificate made by the test) and a Maildir account, through the same code a user runs."""

from __future__ import annotations

import os

import httpx
import pytest

from mtor_node.apps import AppError, find
from tests.apps.dovecot import PASSWORD, imap_server, message
from tests.conftest import running_node

UNREAD = [
    message("Bob Builder <bob@example.test>", "Lunch tomorrow?"),
    message("carol@example.test", "=?utf-8?q?R=C3=A9sum=C3=A9_attached?="),
    message("=?utf-8?b?RMOpamEgVnU=?= <deja@example.test>", "Meeting moved to 3 pm"),
]
READ = [message("Old News <old@example.test>", "Already read")]


def cfg(s: dict, **kw) -> dict:
    return {"mail.host": s["host"], "mail.port": s["port"], "mail.user": s["user"], "mail.password": s["password"],
            "mail.mailbox": "INBOX", "mail.read_count": 5, "mail.ca_file": s["ca_file"], "p2p.airgap": False, **kw}


def files(maildir) -> dict[str, list[str]]:
    return {sub: sorted(os.listdir(maildir / sub)) for sub in ("new", "cur")}


async def test_counts_and_reads_newest_unread_without_marking_them():
    with imap_server(UNREAD, READ) as s:
        app = find("mail")
        a = await app.run("read my mail", cfg(s))
        assert a.data["unread"] == 3
        assert [m["from"] for m in a.data["messages"]] == ["Déja Vu", "carol@example.test", "Bob Builder"]  # newest first
        assert a.data["messages"][1]["subject"] == "Résumé attached"
        assert a.text.startswith("You have 3 unread messages.\nFrom Déja Vu: Meeting moved to 3 pm")
        assert "Already read" not in a.say and "Lunch tomorrow?" in a.say
        a = await app.run("read two emails", cfg(s))  # how many, from the utterance
        assert a.data["unread"] == 3 and len(a.data["messages"]) == 2
        # still unread afterwards: read-only mailbox, headers fetched with BODY.PEEK
        again = await app.run("mail", cfg(s))
        assert again.data["unread"] == 3
        assert not any(":2,S" in f for f in files(s["maildir"])["cur"] if "R0" not in f)


async def test_refusals_are_clear():
    with imap_server([], READ) as s:
        app = find("mail")
        a = await app.run("mail", cfg(s))
        assert a.data == {"unread": 0, "messages": []} and a.say == "You have no unread mail."
        with pytest.raises(AppError) as e:
            await app.run("mail", cfg(s, **{"mail.password": "wrong"}))
        assert e.value.code == "failed" and "refused the login" in e.value.message and PASSWORD not in e.value.message
        with pytest.raises(AppError) as e:  # the system's CAs do not trust a self-signed certificate
            await app.run("mail", cfg(s, **{"mail.ca_file": ""}))
        assert e.value.code == "failed" and "TLS" in e.value.message
        with pytest.raises(AppError) as e:
            await app.run("mail", cfg(s, **{"mail.mailbox": "Nope"}))
        assert e.value.code == "failed" and "Nope" in e.value.message
        with pytest.raises(AppError) as e:
            await app.run("mail", cfg(s, **{"mail.password": ""}))
        assert e.value.code == "not_configured"
        with pytest.raises(AppError) as e:
            await app.run("mail", cfg(s, **{"p2p.airgap": True}))
        assert e.value.code == "airgapped"
    with pytest.raises(AppError) as e:  # its certificate file is gone too
        await find("mail").run("mail", cfg(s))
    assert e.value.code == "not_configured" and "mail.ca_file" in e.value.message
    with pytest.raises(AppError) as e:  # the server is gone
        await find("mail").run("mail", cfg(s, **{"mail.ca_file": ""}))
    assert e.value.code == "offline" and "cannot reach the mail server" in e.value.message


async def test_mail_through_the_node(tmp_path):
    with imap_server(UNREAD) as s:
        mail = {k: s[k] for k in ("host", "port", "user", "password", "ca_file")}
        async with running_node(tmp_path / "n", mail=mail) as node:
            async with httpx.AsyncClient(base_url=node.http_url, timeout=30) as c:
                r = await c.post("/api/v1/apps/mail", json={"text": "check my inbox"})
                assert r.status_code == 200, r.text
                assert r.json()["data"]["unread"] == 3 and "Lunch tomorrow?" in r.json()["say"]
        # nothing of the messages was stored in the node's data dir
        for root, _, names in os.walk(tmp_path / "n"):
            for name in names:
                p = os.path.join(root, name)
                if os.path.getsize(p) < 50 * 2**20:
                    assert b"Lunch tomorrow" not in open(p, "rb").read(), p
