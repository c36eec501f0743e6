#!/usr/bin/python3
"""A milter for mailgate's tests, on Debian's python3-milter (a binding of
Sendmail's libmilter, so the protocol spoken is libmilter's own).

Usage: test_milter.py SOCKET LOGFILE

What it does is chosen by the mail itself, so one milter serves every case:
  HELO evil.example              -> REJECT (connection level: MAIL gets 550 5.7.1)
  MAIL FROM:<refuse-mail@...>    -> TEMPFAIL at MAIL
  MAIL FROM:<accept-mail@...>    -> ACCEPT at MAIL (no more events for the message)
  RCPT TO:<blocked@...>          -> SMFIR_REPLYCODE 550 5.1.1 at RCPT
  Subject: replace-body          -> REPLBODY, CHGHEADER Subject, ADDHEADER, INSHEADER
  Subject: replycode             -> SMFIR_REPLYCODE 554 5.7.0 at end of message
  Subject: tempfail              -> TEMPFAIL at end of message
  Subject: quarantine            -> QUARANTINE, then CONTINUE
  Subject: discard               -> DISCARD
  Subject: envelope              -> CHGFROM, ADDRCPT, DELRCPT
  Subject: echo: TEXT            -> ADDHEADER X-Echo: TEXT (for milter_header_checks)
Every macro it was given is written to LOGFILE, one "stage name=value" a line.
"""
import os
import sys

import Milter

SOCKET, LOG = sys.argv[1], sys.argv[2]

MACROS = {
    "connect": ["j", "{daemon_name}", "{daemon_addr}", "v", "_"],
    "mail": ["i", "{auth_type}", "{auth_authen}", "{mail_addr}"],
    "rcpt": ["i", "{rcpt_addr}", "{rcpt_host}"],
    "eom": ["i"],
}


def log(line):
    with open(LOG, "a") as f:
        f.write(line + "\n")


class TestMilter(Milter.Base):
    def __init__(self):
        self.subject = ""
        self.rcpts = []
        self.content = b""

    def note(self, stage):
        for name in MACROS[stage]:
            value = self.getsymval(name)
            if value is not None:
                log(f"{stage} {name}={value}")

    def connect(self, hostname, family, hostaddr):
        log(f"connect hostname={hostname} addr={hostaddr[0]}")
        self.note("connect")
        return Milter.CONTINUE

    def hello(self, name):
        log(f"helo {name}")
        if name == "evil.example":
            return Milter.REJECT
        return Milter.CONTINUE

    def envfrom(self, sender, *params):
        log(f"mail {sender} {' '.join(params)}".rstrip())
        self.note("mail")
        self.subject = ""
        self.rcpts = []
        self.content = b""
        if sender.startswith("<refuse-mail@"):
            return Milter.TEMPFAIL
        if sender.startswith("<accept-mail@"):
            return Milter.ACCEPT
        return Milter.CONTINUE

    def envrcpt(self, rcpt, *params):
        log(f"rcpt {rcpt}")
        self.note("rcpt")
        if rcpt.startswith("<blocked@"):
            self.setreply("550", "5.1.1", f"{rcpt}: Recipient refused by the test milter")
            return Milter.REJECT
        self.rcpts.append(rcpt)
        return Milter.CONTINUE

    def header(self, name, value):
        log(f"header {name}: {value}")
        if name.lower() == "subject":
            self.subject = value
        return Milter.CONTINUE

    def eoh(self):
        log("eoh")
        return Milter.CONTINUE

    def body(self, chunk):
        self.content += chunk
        return Milter.CONTINUE

    def eom(self):
        log(f"eom body={len(self.content)}")
        self.note("eom")
        s = self.subject
        if s.startswith("echo: "):
            self.addheader("X-Echo", s[len("echo: "):])
            return Milter.CONTINUE
        if "replace-body" in s:
            self.replacebody(b"The test milter replaced this body.\r\nSecond line.\r\n")
            self.chgheader("Subject", 1, "body replaced by the milter")
            self.addheader("X-Test-Milter", "changed")
            self.addheader("X-Test-Top", "first", 0)
            return Milter.CONTINUE
        if "replycode" in s:
            self.setreply("554", "5.7.0", "Refused by the test milter: 100%% sure")
            return Milter.REJECT
        if "tempfail" in s:
            return Milter.TEMPFAIL
        if "quarantine" in s:
            self.quarantine("held by the test milter")
            return Milter.CONTINUE
        if "discard" in s:
            return Milter.DISCARD
        if "envelope" in s:
            self.chgfrom("<changed-sender@sender.example>")
            self.addrcpt("<added@example.com>")
            self.delrcpt(self.rcpts[0])
            return Milter.CONTINUE
        self.addheader("X-Test-Milter", "seen")
        return Milter.ACCEPT

    def abort(self):
        log("abort")
        return Milter.CONTINUE

    def close(self):
        log("close")
        return Milter.CONTINUE


def main():
    os.umask(0)
    Milter.factory = TestMilter
    Milter.set_flags(
        Milter.ADDHDRS
        | Milter.CHGHDRS
        | Milter.CHGBODY
        | Milter.ADDRCPT
        | Milter.DELRCPT
        | Milter.QUARANTINE
        | Milter.CHGFROM
    )
    log("ready")
    Milter.runmilter("mailgate-test", SOCKET, 60)


if __name__ == "__main__":
    main()
