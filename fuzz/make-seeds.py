#!/usr/bin/env python3
"""Writes the seeds of the text and archive targets into fuzz/seeds/.

Messages come from the test suite's shapes and from a few messages of the
shared SpamAssassin public corpus (CC0) when it is beside the checkout;
archives are made here. The binary-record targets (queue_file, ipc_frame)
get theirs from make_seeds.rs, which uses the real encoders.
"""
import email.message
import gzip
import io
import os
import sys
import tarfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
SEEDS = os.path.join(HERE, "seeds")


def put(target, name, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


COMMANDS = [
    "EHLO client.example.org", "HELO [192.0.2.1]", "MAIL FROM:<alice@example.org>",
    "MAIL FROM:<> SIZE=1000 BODY=8BITMIME", "MAIL FROM:<a@b.example> RET=HDRS ENVID=QQ+2Bx",
    "MAIL FROM:alice@example.org", "MAIL FROM:<@route.example:a@b.example>",
    "MAIL FROM:<\"quoted local\"@example.org> SMTPUTF8",
    "RCPT TO:<bob@example.com> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@example.com",
    "RCPT TO:<postmaster>", "RCPT TO:<user%other@example.com>", "RCPT TO:<a!b@example.com>",
    "RCPT TO:<bob@[192.0.2.7]>", "RCPT TO:<bob@[IPv6:2001:db8::1]>", "DATA", "BDAT 100 LAST",
    "RSET", "NOOP hello", "QUIT", "VRFY bob", "ETRN example.com", "STARTTLS", "AUTH PLAIN AGFhAGI=",
    "XCLIENT ADDR=1.2.3.4", "mail from:<ü@example.org> SMTPUTF8", "RCPT TO:<\"a>b\"@example.com>",
]


def main():
    for i, line in enumerate(COMMANDS):
        put("smtp_command", f"cmd{i:02}", line)

    msg = b"From: a@example.org\r\nReceived: from x\r\nSubject: hi\r\n\r\nbody\r\n..stuffed\r\n.\r\nQUIT\r\n"
    put("smtp_data", "plain", bytes([0, 100, 3, 7, 40, 90]) + msg)
    put("smtp_data", "smuggle", bytes([0, 50, 2, 5, 9, 13]) + b"a\r\n.\nb\n.\r\nc\r.\r\n\r\n.\r\n")
    put("smtp_data", "limits", bytes([10, 5, 0, 1, 2, 3]) + b"Received: a\r\nReceived: b\r\n\r\nx\r\n.\r\n")

    html = [
        b"<html><head><title>Win</title><style>p{color:#fff}</style></head><body bgcolor=white>"
        b"<p style='color:white;font-size:1px'>hidden</p><a href=\"http://x.example/&#x61;\">click</a>"
        b"<img src=cid:1 width=300 height=200><!-- c --><script>x</script>&amp;&nbsp;&#9731;</body></html>",
        b"<table><tr><td><font color=#ffffff>a</font></td></tr></table><form action=http://x/></form>",
        b"<<<>>><a href='<'>&&&#;&#x;<!--<!-- --!>",
    ]
    for i, h in enumerate(html):
        put("html", f"html{i}", h)

    def attach(name, ctype, data, inner=None):
        m = email.message.EmailMessage()
        m["From"] = "a@example.org"
        m["To"] = "b@example.com"
        m["Subject"] = "files"
        m.set_content("see attached")
        maintype, subtype = ctype.split("/")
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
        if inner is not None:
            m.add_attachment(inner)
        return m.as_bytes()

    def zip_of(files, method=zipfile.ZIP_DEFLATED):
        b = io.BytesIO()
        with zipfile.ZipFile(b, "w", method) as z:
            for n, d in files:
                z.writestr(n, d)
        return b.getvalue()

    def tar_of(files):
        b = io.BytesIO()
        with tarfile.open(fileobj=b, mode="w") as t:
            for n, d in files:
                info = tarfile.TarInfo(n)
                info.size = len(d)
                t.addfile(info, io.BytesIO(d))
        return b.getvalue()

    pe = b"MZ" + b"\0" * 58 + bytes([64, 0, 0, 0]) + b"PE\0\0" + b"\0" * 60
    inner_zip = zip_of([("payload.exe", pe)])
    archives = {
        "zip": zip_of([("readme.txt", b"hello"), ("docs/run.scr", b"x")]),
        "zip-stored": zip_of([("a.exe", pe)], zipfile.ZIP_STORED),
        "zip-nested": zip_of([("inner.zip", inner_zip)]),
        "gzip": gzip.compress(tar_of([("x/evil.js", b"alert(1)")])),
        "tar": tar_of([("a.txt", b"a"), ("b/c.lnk", b"L")]),
    }
    for i, (name, data) in enumerate(archives.items()):
        pick = {"zip": 0, "gzip": 1, "tar": 2}[name.split("-")[0]]
        put("archive", name, bytes([pick]) + data)
        put("banned", name, attach(f"files.{name.split('-')[0]}", "application/octet-stream", data))
    put("banned", "double-ext", attach("invoice.pdf.exe", "application/pdf", b"%PDF"))
    nested = email.message.EmailMessage()
    nested["Subject"] = "inner"
    nested.set_content("inner")
    nested.add_attachment(pe, maintype="application", subtype="octet-stream", filename="x.bin")
    put("banned", "rfc822", attach("a.txt", "text/plain", b"a", inner=nested))

    put("policy_wire", "request",
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\n"
        "client_address=192.0.2.1\nclient_name=mail.example.org\nhelo_name=mail.example.org\n"
        "sender=a@example.org\nrecipient=b@example.com\nsize=1234\ninstance=12.34\n\n")
    put("policy_wire", "two", "request=smtpd_access_policy\nrecipient=x\n\nrequest=smtpd_access_policy\n\n")

    etc = os.path.join(HERE, "..", "etc")
    for name in ("main.cf", "master.cf"):
        p = os.path.join(etc, name)
        if os.path.exists(p):
            put(name.replace(".", "_"), "etc", open(p, "rb").read())
    put("main_cf", "expansion",
        "myhostname = mx.example.org\nmydomain = example.org\nmyorigin = $mydomain\n"
        "relay_domains = ${mydomain}, $myhostname\nx = ${y?{$z}:{w}}\n  continued\n")
    put("master_cf", "lines",
        "smtp inet n - y - 100 smtpd\n  -o smtpd_tls_security_level=may\n"
        "[::1]:2525 inet n - y - - smtpd\ncleanup unix n - y - 0 cleanup\n")
    put("table", "texthash", b"\0example.com OK\nuser@ REJECT no\n# c\n  continued\n")
    put("table", "cidr", b"\x01192.0.2.0/24 REJECT\n2001:db8::/32 OK\n!10.0.0.0/8 DUNNO\n")
    put("table", "regexp", b"\x02/^Subject: (.*)/ REJECT $1\nif /a/\n/b/i OK\nendif\n")
    put("table", "pcre", b"\x03/^(?<n>x)+$/ DUNNO\n!/y/ PREPEND X-Y: $0\n")
    put("table", "inline", b"\x04a=b, {c = d e}, f=g")

    corpus = os.path.join(HERE, "..", "..", "shared", "corpus")
    if len(sys.argv) > 1:
        corpus = sys.argv[1]
    picked = 0
    if os.path.isdir(corpus):
        for sub in ("spam", "hard-ham", "ham"):
            d = os.path.join(corpus, sub)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                data = open(os.path.join(d, name), "rb").read()
                lower = data.lower()
                kind = ("html" if b"text/html" in lower else "") + ("mp" if b"multipart" in lower else "")
                if kind and len(data) < 20000 and picked < 24 and not os.path.exists(
                        os.path.join(SEEDS, "mime", f"{sub}-{kind}")):
                    put("mime", f"{sub}-{kind}", data)
                    picked += 1
                if picked >= 6 * (1 + ("spam", "hard-ham", "ham").index(sub)):
                    break
    put("mime", "multipart",
        b"From: a@example.org\r\nTo: b@example.com\r\nSubject: =?utf-8?B?w6k=?=\r\n"
        b"Received: from x (x [203.0.113.9]) by gw\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative; boundary=XX\r\n\r\n--XX\r\nContent-Type: text/plain\r\n"
        b"Content-Transfer-Encoding: quoted-printable\r\n\r\nBuy=20cheap pills http://x.example/\r\n"
        b"--XX\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"PGI+aGk8L2I+\r\n--XX--\r\n")


if __name__ == "__main__":
    main()
