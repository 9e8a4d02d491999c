"""A real IMAP server for tests: Debian's dovecot-imapd on 127.0.0.1, in the foreground (`dovecot -F`)
with its own config, a self-signed TLS certificate and one Maildir account, all in a temp dir."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import free_port

DOVECOT = shutil.which("dovecot") or ("/usr/sbin/dovecot" if os.path.exists("/usr/sbin/dovecot") else None)
USER, PASSWORD = "alice@example.test", "app-password-123"


def need_dovecot() -> str:
    if not DOVECOT:
        pytest.skip("dovecot is not installed (apt-get install dovecot-imapd; install.sh --dev does it)")
    return DOVECOT


def self_signed(d: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True, timeout=60)


def message(frm: str, subject: str, body: str = "hello") -> bytes:
    return (f"From: {frm}\r\nTo: {USER}\r\nSubject: {subject}\r\nDate: Wed, 02 Dec 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{abs(hash(subject))}@example.test>\r\nMIME-Version: 1.0\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def _accounts() -> tuple[str, str, int, int]:
    """Who dovecot's processes run as: as root, its own unprivileged users (mail as uid 0 is refused)."""
    if os.getuid() != 0:
        me, g = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
        return me, me, os.getuid(), os.getgid()
    d = pwd.getpwnam("dovecot")
    null = pwd.getpwnam("dovenull").pw_name if _has_user("dovenull") else "dovecot"
    return "dovecot", null, d.pw_uid, d.pw_gid


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


@contextmanager
def imap_server(unread: list[bytes], read: list[bytes] = ()):
    exe = need_dovecot()
    d = Path(tempfile.mkdtemp(prefix="mtor-dovecot-"))  # not under pytest's 0700 tmp: dovecot's users must reach it
    proc = None
    try:
        os.chmod(d, 0o755)
        internal, login, uid, gid = _accounts()
        self_signed(d)
        maildir = d / "home" / USER / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True)
        t = int(time.time()) - 1000
        for i, m in enumerate(unread):
            p = maildir / "new" / f"{t + i}.M{i}P1.test"
            p.write_bytes(m)
            os.utime(p, (t + i, t + i))
        for i, m in enumerate(read):
            p = maildir / "cur" / f"{t - 100 + i}.R{i}P1.test:2,S"
            p.write_bytes(m)
            os.utime(p, (t - 100 + i, t - 100 + i))
        for root, dirs, files in os.walk(d / "home"):
            for x in dirs + files:
                os.chown(os.path.join(root, x), uid, gid)
        os.chown(d / "home", uid, gid)
        (d / "passwd").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        port = free_port()
        (d / "dovecot.conf").write_text(f"""
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = required
ssl_cert = <{d}/cert.pem
ssl_key = <{d}/key.pem
default_internal_user = {internal}
default_internal_group = {grp.getgrgid(gid).gr_name}
default_login_user = {login}
first_valid_uid = {uid}
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/passwd
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={d}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    port = 0
  }}
  inet_listener imaps {{
    port = {port}
    ssl = yes
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
""")
        proc = subprocess.Popen([exe, "-F", "-c", str(d / "dovecot.conf")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:  # ready when the TLS port answers
            if proc.poll() is not None:
                raise RuntimeError(f"dovecot exited {proc.returncode}: {proc.stdout.read().decode()[-2000:]}"
                                   f"{(d / 'dovecot.log').read_text()[-2000:] if (d / 'dovecot.log').exists() else ''}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError("dovecot did not listen within 30 s") from None
                time.sleep(0.1)
        yield {"host": "127.0.0.1", "port": port, "user": USER, "password": PASSWORD, "ca_file": str(d / "cert.pem"),
               "maildir": maildir, "log": d / "dovecot.log"}
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(d, ignore_errors=True)


def tls_context(ca_file: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=ca_file)
