"""Byte links for MAVLink: UDP, TCP and serial, opened from pymavlink-style strings.

    kind, address = parse_connection("udpout:192.168.144.10:14550")
    ep = Endpoint("tcp:127.0.0.1:5760")      # resolves the host once; JetsegError if bad
    link = ep.open(first=True)               # fileno(), read(), write(buf), close()

udpout:HOST:PORT sends there and hears the replies; udpin:HOST:PORT listens and answers the
last sender; tcp:HOST:PORT is a client; /dev/ttyTHS1,921600 a serial port (pyserial). The
first open turns every failure into a one-line JetsegError with the fix; later opens (the
reconnects) raise OSError for the caller's backoff. No pymavlink here: these only move bytes.
"""
import socket

from jetseg.errors import JetsegError

CONNECTION_FIX = ("use udpout:HOST:PORT, udpin:HOST:PORT, tcp:HOST:PORT or a serial device "
                  "with its baud rate, e.g. mavlink:/dev/ttyTHS1,921600")


def parse_connection(text):
    """(kind, address) of a pymavlink-style connection string; JetsegError when malformed."""
    s = str(text)
    for kind in ("udpout", "udpin", "tcp"):
        if s.startswith(kind + ":"):
            host, sep, port = s[len(kind) + 1:].rpartition(":")
            host = host.strip("[]")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise JetsegError("MAVLink connection {!r} needs HOST:PORT with a port in "
                                  "1..65535".format(s), fix=CONNECTION_FIX)
            return kind, (host, int(port))
    device, _, baud = s.partition(",")
    if device.startswith("/dev/") or device.upper().startswith("COM"):
        if baud and not (baud.isdigit() and int(baud) > 0):
            raise JetsegError("serial baud rate {!r} is not a number".format(baud),
                              fix="e.g. /dev/ttyTHS1,921600")
        return "serial", (device, int(baud or 115200))
    raise JetsegError("{!r} is not a MAVLink connection".format(s), fix=CONNECTION_FIX)


def resolve(host, port, stream=False, what="host"):
    """(family, address) of host:port, resolved once; IPv4 first, as 'localhost' means to
    most listeners (getaddrinfo often lists ::1 first). JetsegError when it cannot."""
    try:
        infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM if stream
                                   else socket.SOCK_DGRAM)
    except (socket.gaierror, UnicodeError) as e:
        raise JetsegError("cannot resolve {} {!r} ({})".format(what, host, e),
                          fix="give an IP address or a host name this machine resolves")
    info = sorted(infos, key=lambda i: i[0] != socket.AF_INET)[0]
    return info[0], info[4]


class _Udp(object):
    """udpout sends to HOST:PORT and hears replies; udpin listens and answers the last
    sender. Losing a datagram is not losing the link: write errors drop that datagram."""

    def __init__(self, kind, family, addr):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.listen, self.peer = kind == "udpin", None
        try:
            if self.listen:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                self.sock.bind(addr)
            else:
                self.peer = addr
        except OSError:
            self.sock.close()
            raise
        self.sock.setblocking(False)

    def fileno(self):
        return self.sock.fileno()

    def read(self):
        try:
            data, addr = self.sock.recvfrom(65535)
        except OSError:             # EAGAIN; ECONNREFUSED from an earlier datagram
            return b""
        if self.listen:
            self.peer = addr
        return data

    def write(self, buf):
        if self.peer is None:
            return False            # udpin: nobody has talked to us yet
        try:
            self.sock.sendto(buf, self.peer)
            return True
        except OSError:
            return False

    def close(self):
        self.sock.close()


class _Stream(object):
    """A TCP client or a serial port: errors mean the link is gone (the caller reopens)."""

    def __init__(self, kind, address, family=None, timeout=2.0):
        self.kind = kind
        if kind == "tcp":
            self.io = socket.socket(family, socket.SOCK_STREAM)
            try:
                self.io.settimeout(timeout)
                self.io.connect(address)
                self.io.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.io.settimeout(0.5)                       # bounds a send
            except OSError:
                self.io.close()
                raise
        else:
            try:
                import serial
            except ImportError:
                raise JetsegError("a serial MAVLink link needs pyserial",
                                  fix="pip install pyserial (part of jetseg[mavlink])")
            self.io = serial.Serial(address[0], address[1], timeout=0, write_timeout=0.5)

    def fileno(self):
        return self.io.fileno()

    def read(self):
        data = self.io.recv(4096) if self.kind == "tcp" else self.io.read(4096)
        if self.kind == "tcp" and not data:
            raise OSError("closed by the other end")
        return data

    def write(self, buf):
        if self.kind == "tcp":
            self.io.sendall(buf)
        else:
            self.io.write(buf)
        return True

    def close(self):
        self.io.close()


class Endpoint(object):
    """A parsed, resolved connection string that opens links."""

    def __init__(self, connection):
        self.name = str(connection)
        self.kind, (host, port) = parse_connection(connection)
        self.family, self.address = (None, (host, port)) if self.kind == "serial" else \
            resolve(host, port, self.kind == "tcp", "MAVLink host")     # once, here

    def open(self, first=False):
        try:
            if self.kind in ("udpout", "udpin"):
                return _Udp(self.kind, self.family, self.address)
            return _Stream(self.kind, self.address, self.family, timeout=2.0 if first else 1.0)
        except (OSError, ValueError) as e:
            if not first:
                raise
            what = "serial port {}".format(self.address[0]) if self.kind == "serial" else \
                "{}:{}:{}".format(self.kind, *self.address[:2])
            fix = {"serial": "check the device (ls /dev/ttyTHS* /dev/ttyACM* /dev/ttyUSB*) and "
                             "that you may open it (sudo usermod -aG dialout $USER)",
                   "tcp": "start the flight controller's or mavlink-router's TCP server first, "
                          "or use udpout:/udpin:",
                   "udpin": "give an address of this machine and a free port"}
            raise JetsegError("cannot open MAVLink {} ({})".format(
                what, getattr(e, "strerror", None) or e), fix=fix.get(self.kind, CONNECTION_FIX))
