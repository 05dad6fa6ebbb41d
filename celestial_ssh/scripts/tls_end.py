#!/usr/bin/env python3
# --tls on a host without socat: one end of the TLS link, in python3 (3.6 and later: RHEL 8's
# is 3.6, so no walrus, no positional-only parameters, no generic annotations at run time).
# It speaks what socat's end speaks (TLS 1.2, ECDHE with an AEAD cipher, the same PEM files),
# so either end may be socat and the other this script.
#
# python3 -I -c TEXT listen LOG OUTPUT DIGEST IDLE_TIMEOUT_S ADDRESS PORT ACCEPT_TIMEOUT_S
#                           IDENTITY PEER
#   the target's end (as tls_listen.sh): bind ADDRESS:PORT (0: any free port), print
#   "celestial-ssh-listening PORT", serve the first connection whose peer presents the one
#   certificate in PEER (handshakes that fail are logged to LOG and the listener keeps
#   accepting until ACCEPT_TIMEOUT_S), write what it carries to OUTPUT, and its SHA-256 to
#   DIGEST (as lib_hash_stdin.sh's openssl writes it; "-": none). Gives up when nothing
#   moves for IDLE_TIMEOUT_S, and ends when stdin (the coordinator's channel) closes.
#   Where it runs as root and the host has the user nobody, it becomes nobody once it has
#   bound its port and opened its files: whoever connects talks TLS to an unprivileged
#   process (socat's listener drops root after the accept; this is earlier).
#
# python3 -I -c TEXT connect ADDRESS PORT CONNECT_TIMEOUT_S IDLE_TIMEOUT_S IDENTITY PEER
#                            PEER_NAME FIFO
#   the source's end (as socat's link in direct_stream.sh): connect, check that the peer
#   holds the certificate in PEER and that it names PEER_NAME, say "SSL connection using"
#   on stderr (direct_stream.sh waits for it in the log stderr goes to), then open FIFO and
#   send what comes out of it; at its end close the TLS session cleanly and wait for the
#   peer's close (a listener in this script answers once all has been written).
#
# Exit status: 0 at the peer's clean close; 93 when the listener could not listen (bind,
# credentials, OUTPUT or DIGEST); 143 when the coordinator's channel closed (as a socat
# killed by tls_listen.sh's watchdog); 1 on any other failure, said on stderr.

import contextlib
import hashlib
import os
import pwd
import queue
import select
import socket
import ssl
import sys
import threading
import time

# reads of up to 1 MiB (one TLS record is at most 16 KiB; a pipe gives what it holds)
BUFFER_BYTES = 1 << 20
LISTENING_MARKER = "celestial-ssh-listening"
# the words socat's -d -d log has once the handshake passed (tls_link.HANDSHAKE_DONE)
HANDSHAKE_DONE = "SSL connection using"
EXIT_CANNOT_LISTEN = 93
EXIT_CHANNEL_CLOSED = 143
# handshakes at once: a port scanner gets a few threads, not the host's memory
MAX_HANDSHAKES = 16
# ECDHE only (forward secrecy), AEAD only, in OpenSSL's order (AES-256-GCM first: with a
# socat at the other end, the cipher socat's would choose)
CIPHERS = "ECDHE+AESGCM:ECDHE+CHACHA20"
UNPRIVILEGED_USER = "nobody"


class Failed(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class Log:
    """Lines to LOG (the listener's) or to stderr (the link's, which direct_stream.sh
    sends to its log)."""

    def __init__(self, path: str = "") -> None:
        # open for the process's life
        self.file = open(path, "w", buffering=1) if path else sys.stderr  # noqa: SIM115
        self.lock = threading.Lock()

    def say(self, message: str) -> None:
        with self.lock:
            self.file.write(f"tls-end[{os.getpid()}] {message}\n")
            self.file.flush()


def context(server: bool, identity: str, peer: str) -> ssl.SSLContext:
    """TLS 1.2 only (tls_link.py says why not 1.3), trusting only the peer's certificate."""
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
    if hasattr(ssl, "TLSVersion"):
        tls.minimum_version = ssl.TLSVersion.TLSv1_2
        tls.maximum_version = ssl.TLSVersion.TLSv1_2
    else:
        # Python 3.6: the options of the other versions
        tls.options |= ssl.OP_NO_TLSv1 | ssl.OP_NO_TLSv1_1 | getattr(ssl, "OP_NO_TLSv1_3", 0)
    tls.set_ciphers(CIPHERS)
    # IDENTITY holds the key and then the certificate (socat's cert=)
    tls.load_cert_chain(identity)
    tls.load_verify_locations(cafile=peer)
    tls.verify_mode = ssl.CERT_REQUIRED
    return tls


def described(connection: ssl.SSLSocket) -> str:
    cipher = connection.cipher()
    return f"{HANDSHAKE_DONE} {cipher[0] if cipher else '?'} ({connection.version()})"


def write_all(fd: int, data: memoryview) -> None:
    while data:
        data = data[os.write(fd, data) :]


def drop_root() -> None:
    """Become the unprivileged user where running as root and the host has it."""
    if os.geteuid() != 0:
        return
    try:
        user = pwd.getpwnam(UNPRIVILEGED_USER)
    except KeyError:
        return
    os.setgroups([])
    os.setgid(user.pw_gid)
    os.setuid(user.pw_uid)


def watch_channel(log: Log, finishing: threading.Lock) -> None:
    """End the listener when stdin closes (the coordinator gave up or died): a stranger
    could otherwise hold it past every timeout. Not once the listener is finishing."""
    while True:
        try:
            if not os.read(0, 65536):
                break
        except InterruptedError:
            continue
        except OSError:
            break
    with finishing:
        log.say("the coordinator's channel closed")
        sys.stderr.flush()
        os._exit(EXIT_CHANNEL_CLOSED)


def first_peer(
    server: socket.socket, tls: ssl.SSLContext, deadline: float, log: Log
) -> ssl.SSLSocket:
    """The first connection whose handshake passes: others (strangers, scanners, wrong
    certificates) are refused and logged, and accepting goes on until ``deadline``."""
    passed: queue.Queue[ssl.SSLSocket] = queue.Queue()
    slots = threading.BoundedSemaphore(MAX_HANDSHAKES)
    refusals: list[str] = []

    def handshake(connection: socket.socket, address: "tuple[str, int]") -> None:
        try:
            connection.settimeout(max(deadline - time.monotonic(), 0.1))
            passed.put(tls.wrap_socket(connection, server_side=True, suppress_ragged_eofs=False))
        except (OSError, ValueError) as error:
            refusals.append(f"refused {address[0]}: {error}")
            log.say(refusals[-1])
            connection.close()
        finally:
            slots.release()

    def accepting() -> None:
        while True:
            try:
                connection, address = server.accept()
            except OSError:
                return
            if not slots.acquire(False):
                log.say(f"refused {address[0]}: too many handshakes at once")
                connection.close()
                continue
            log.say(f"accepting connection from {address[0]}")
            threading.Thread(target=handshake, args=(connection, address), daemon=True).start()

    threading.Thread(target=accepting, daemon=True).start()
    try:
        connection = passed.get(timeout=max(deadline - time.monotonic(), 0))
    except queue.Empty:
        last = (": last " + refusals[-1]) if refusals else ""
        raise Failed("no peer with the expected certificate connected in time" + last) from None
    finally:
        # shutdown wakes the accepting thread (close alone leaves it in accept())
        with contextlib.suppress(OSError):
            server.shutdown(socket.SHUT_RDWR)
        server.close()
    return connection


def listen(
    log_path: str,
    output: str,
    digest: str,
    idle_timeout_s: str,
    address: str,
    port: str,
    accept_timeout_s: str,
    identity: str,
    peer: str,
) -> None:
    os.umask(0o077)
    log = Log(log_path)
    try:
        serve(log, output, digest, idle_timeout_s, address, port, accept_timeout_s, identity, peer)
    except Failed as failure:
        log.say(str(failure))
        raise


def serve(
    log: Log,
    output: str,
    digest: str,
    idle_timeout_s: str,
    address: str,
    port: str,
    accept_timeout_s: str,
    identity: str,
    peer: str,
) -> None:
    try:
        tls = context(True, identity, peer)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        server = socket.socket(family, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((address, int(port)))
        server.listen(MAX_HANDSHAKES)
    except (OSError, ValueError) as error:
        raise Failed(
            f"cannot listen on {address} port {port}: {error}", EXIT_CANNOT_LISTEN
        ) from None
    # opened (and emptied) before anyone connects, and before root is dropped
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0)
    try:
        landing = os.open(output, flags, 0o600)
        digest_fd = os.open(digest, flags, 0o600) if digest != "-" else None
    except OSError as error:
        raise Failed(f"writing the archive failed: {error}", EXIT_CANNOT_LISTEN) from None
    try:
        drop_root()
    except OSError as error:
        # as socat's su=: no connection is served with root it could not give up
        raise Failed(f"cannot become {UNPRIVILEGED_USER}: {error}", EXIT_CANNOT_LISTEN) from None
    # watched from here on: what comes before ends soon on its own, and says why
    finishing = threading.Lock()
    threading.Thread(target=watch_channel, args=(log, finishing), daemon=True).start()
    bound = server.getsockname()[1]
    log.say(f"listening on {address} port {bound}")
    sys.stdout.write(f"{LISTENING_MARKER} {bound}\n")
    sys.stdout.flush()
    deadline = time.monotonic() + float(accept_timeout_s)
    connection = first_peer(server, tls, deadline, log)
    log.say(f"{described(connection)} from {connection.getpeername()[0]}")
    connection.settimeout(float(idle_timeout_s))
    hashing = hashlib.sha256() if digest_fd is not None else None
    buffer = bytearray(BUFFER_BYTES)
    view = memoryview(buffer)
    total = 0
    while True:
        try:
            count = connection.recv_into(buffer)
        # not TimeoutError: Python 3.6's socket.timeout is not one
        except socket.timeout:  # noqa: UP041
            raise Failed(f"nothing arrived for {idle_timeout_s}s (after {total} bytes)") from None
        except (OSError, ValueError) as error:
            # with suppress_ragged_eofs off, a connection cut without TLS's close lands here
            raise Failed(f"the connection broke after {total} bytes: {error}") from None
        if not count:
            break
        total += count
        if hashing is not None:
            hashing.update(view[:count])
        try:
            write_all(landing, view[:count])
        except OSError as error:
            raise Failed(f"writing the archive failed: {error}") from None
    # from here on the channel closing does not cut the digest short
    finishing.acquire()
    try:
        os.close(landing)
        if digest_fd is not None and hashing is not None:
            write_all(digest_fd, memoryview(f"{hashing.hexdigest()} *stdin\n".encode()))
            os.close(digest_fd)
    except OSError as error:
        raise Failed(f"writing the archive failed: {error}") from None
    log.say(f"received {total} bytes")
    # our close answers the source's, which waits for it: all was written by then
    with contextlib.suppress(OSError, ValueError):
        connection.unwrap()
    connection.close()


def connect(
    address: str,
    port: str,
    connect_timeout_s: str,
    idle_timeout_s: str,
    identity: str,
    peer: str,
    peer_name: str,
    fifo: str,
) -> None:
    tls = context(False, identity, peer)
    log = Log()
    try:
        raw = socket.create_connection((address, int(port)), timeout=float(connect_timeout_s))
    except OSError as error:
        raise Failed(f"cannot connect to {address} port {port}: {error}") from None
    raw.settimeout(float(idle_timeout_s))
    try:
        connection = tls.wrap_socket(raw, server_hostname=peer_name, suppress_ragged_eofs=False)
    except (OSError, ValueError) as error:
        raise Failed(f"the TLS handshake with {address} failed: {error}") from None
    log.say(described(connection))
    source = os.open(fifo, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    try:
        # a bigger pipe: fewer wake-ups on both sides of the FIFO (Linux's F_SETPIPE_SZ)
        import fcntl

        fcntl.fcntl(source, 1031, BUFFER_BYTES)
    except (ImportError, OSError):
        pass
    reader = os.fdopen(source, "rb", buffering=0)
    ready = select.poll()
    ready.register(source, select.POLLIN)
    buffer = bytearray(BUFFER_BYTES)
    view = memoryview(buffer)
    total = 0
    idle_ms = int(float(idle_timeout_s) * 1000)
    while True:
        if not ready.poll(idle_ms):
            raise Failed(f"nothing to send for {idle_timeout_s}s (after {total} bytes)")
        count = reader.readinto(buffer)
        if not count:
            break
        try:
            connection.sendall(view[:count])
        except (OSError, ValueError) as error:
            raise Failed(f"sending failed after {total} bytes: {error}") from None
        total += count
    try:
        # close_notify, then the peer's: the end of the archive arrived whole
        connection.unwrap()
    except (OSError, ValueError) as error:
        raise Failed(f"closing the link after {total} bytes failed: {error}") from None
    connection.close()
    log.say(f"sent {total} bytes")


def main(argv: "list[str]") -> int:
    mode, args = (argv[0], argv[1:]) if argv else ("", [])
    try:
        if mode == "listen" and len(args) == 9:
            listen(*args)
        elif mode == "connect" and len(args) == 8:
            connect(*args)
        else:
            sys.stderr.write("usage: tls_end.py listen|connect ARGS (see the script)\n")
            return 2
    except Failed as failure:
        sys.stderr.write(f"tls-end: {failure}\n")
        return failure.status
    except (OSError, ValueError) as error:
        sys.stderr.write(f"tls-end: {error}\n")
        return 1
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # daemon threads may be blocked on stdin or in accept(): leave without waiting for them
    os._exit(status)
