#!/usr/bin/env python3
"""A smarthost for herald's outbound SMTP tests: a real SMTP server herald did not write.

Built on aiosmtpd 1.4.6 (scripts/test-deps.sh installs it). It offers plain, STARTTLS or
implicit (port-465 style) TLS, AUTH PLAIN / LOGIN / CRAM-MD5 against one user, and stores
each accepted message as DIR/<n>.eml (the bytes as received, dot-unstuffed) plus
DIR/<n>.json ({"mail_from", "rcpt_tos", "auth_user", "tls", "peer"}), the json renamed
into place last. It stops on SIGTERM/SIGINT, or by itself after --max-seconds.

    smarthost.py --listen 127.0.0.1:0 --ready-file PORTFILE --maildir DIR \\
        --tls starttls --cert cert.pem --key key.pem \\
        --auth PLAIN,LOGIN,CRAM-MD5 --user u --password p --require-auth
"""
import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import os
import secrets
import signal
import ssl
import sys
import time
import warnings

from aiosmtpd.smtp import MISSING, SMTP, AuthResult, LoginPassword, auth_mechanism

MECHANISMS = ("PLAIN", "LOGIN", "CRAM-MD5")


def write_atomically(path, data):
    tmp = os.path.join(os.path.dirname(path), "." + os.path.basename(path) + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


class Server(SMTP):
    # aiosmtpd's own prompts are "User Name\0" / "Password\0"; these are the usual ones.
    AuthLoginUsernameChallenge = "Username:"
    AuthLoginPasswordChallenge = "Password:"

    async def smtp_AUTH(self, arg):
        # aiosmtpd matches mechanism names case-sensitively; RFC 4954 says they are not.
        if arg:
            mech, sp, rest = arg.partition(" ")
            arg = mech.upper() + sp + rest
        await super().smtp_AUTH(arg)

    @auth_mechanism("CRAM-MD5")
    async def auth_CRAM_MD5(self, _, args):
        """RFC 2195; aiosmtpd has no CRAM-MD5 of its own."""
        if len(args) != 1:
            await self.push("501 5.5.4 CRAM-MD5 takes no initial response")
            return AuthResult(success=False, handled=True)
        challenge = f"<{secrets.randbelow(10**9)}.{int(time.time())}@{self.hostname}>".encode()
        response = await self.challenge_auth(challenge)
        if response is MISSING:  # '*' or bad base64: challenge_auth already replied
            return AuthResult(success=False, handled=True)
        user, _, digest = response.rpartition(b" ")
        return self._authenticate("CRAM-MD5", (user, challenge, digest))


class Handler:
    def __init__(self, args):
        self.args = args
        self.reject = {a.lower() for a in args.reject_rcpt}
        self.n = 0

    def authenticate(self, server, session, envelope, mechanism, data):
        user, password = self.args.user.encode(), self.args.password.encode()
        if mechanism == "CRAM-MD5":
            login, challenge, digest = data
            good = hmac.new(password, challenge, hashlib.md5).hexdigest().encode()
            ok = login == user and hmac.compare_digest(digest.lower(), good)
        else:
            login = data.login
            ok = login == user and hmac.compare_digest(data.password, password)
        # handled defaults to True, which means "the reply was sent": a failure would get none.
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(login, b""))

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        if not self.args.auth:
            responses = [r for r in responses if not r.startswith("250-AUTH")]
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.lower() in self.reject:
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        d = self.args.maildir
        if d:
            while os.path.exists(os.path.join(d, f"{self.n}.json")):
                self.n += 1
            peer = session.peer
            meta = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": envelope.rcpt_tos,
                "auth_user": session.auth_data.login.decode(errors="replace")
                if session.authenticated else None,
                "tls": server.transport.get_extra_info("ssl_object") is not None,
                "peer": f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}",
            }
            write_atomically(os.path.join(d, f"{self.n}.eml"), envelope.original_content)
            write_atomically(os.path.join(d, f"{self.n}.json"), json.dumps(meta).encode())
        return f"250 2.0.0 OK queued as {self.n}"


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--listen", required=True, help="HOST:PORT (port 0: any free port)")
    p.add_argument("--tls", choices=("none", "starttls", "implicit"), default="none")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth", default="", help="comma list of PLAIN,LOGIN,CRAM-MD5")
    p.add_argument("--user", default="")
    p.add_argument("--password", default="")
    p.add_argument("--require-auth", action="store_true")
    p.add_argument("--auth-require-tls", action=argparse.BooleanOptionalAction,
                   help="offer AUTH only after STARTTLS (default: on with --tls starttls)")
    p.add_argument("--maildir")
    p.add_argument("--ready-file")
    p.add_argument("--reject-rcpt", action="append", default=[], metavar="ADDR")
    p.add_argument("--size", type=int, help="advertise SIZE N (and enforce it)")
    p.add_argument("--max-seconds", type=float, default=120)
    p.add_argument("-v", "--verbose", action="store_true", help="log the SMTP dialogue")
    a = p.parse_args(argv)
    a.auth = [m.strip().upper() for m in a.auth.split(",") if m.strip()]
    if unknown := set(a.auth) - set(MECHANISMS):
        p.error(f"unknown AUTH mechanism(s): {', '.join(sorted(unknown))}")
    if a.tls != "none" and not (a.cert and a.key):
        p.error(f"--tls {a.tls} needs --cert and --key")
    host, sep, port = a.listen.rpartition(":")
    if not sep or not port.isdigit():
        p.error("--listen wants HOST:PORT")
    a.host, a.port = host.strip("[]"), int(port)
    if a.auth_require_tls is None:
        a.auth_require_tls = a.tls == "starttls"
    return a


async def serve(a):
    ctx = None
    if a.tls != "none":
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
    if a.maildir:
        os.makedirs(a.maildir, exist_ok=True)
    handler = Handler(a)
    loop = asyncio.get_running_loop()

    def factory():
        return Server(
            handler,
            loop=loop,
            hostname="smarthost.test",
            data_size_limit=a.size,  # None: no SIZE advertised, no limit
            tls_context=ctx if a.tls == "starttls" else None,
            require_starttls=False,
            auth_required=a.require_auth,
            # aiosmtpd does not see implicit TLS (it sits below it), so never ask it there.
            auth_require_tls=a.auth_require_tls and a.tls != "implicit",
            auth_exclude_mechanism=[m for m in MECHANISMS if m not in a.auth],
            authenticator=handler.authenticate,
        )

    # Not aiosmtpd's Controller: it connects to HOST:PORT to "trigger" the server, which
    # fails with port 0, and it runs the loop in a thread, away from our signal handlers.
    server = await loop.create_server(factory, a.host, a.port, ssl=ctx if a.tls == "implicit" else None)
    port = server.sockets[0].getsockname()[1]
    if a.ready_file:
        write_atomically(a.ready_file, f"{port}\n".encode())
    print(f"smarthost: listening on {a.host}:{port} tls={a.tls} auth={','.join(a.auth) or '-'}",
          file=sys.stderr, flush=True)

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await asyncio.wait_for(stop.wait(), a.max_seconds)
    except asyncio.TimeoutError:
        print(f"smarthost: --max-seconds {a.max_seconds:g} reached, exiting", file=sys.stderr)
    server.close()


def main(argv=None):
    a = parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="smarthost: %(name)s %(message)s")
    if not a.verbose:
        # aiosmtpd logs a deprecation warning on every successful AUTH (Session.login_data),
        # and warns that AUTH without TLS is unsafe; both are expected here.
        logging.getLogger("mail.log").setLevel(logging.ERROR)
        warnings.simplefilter("ignore")
    asyncio.run(serve(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
