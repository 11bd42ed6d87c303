"""The outbound guard: where npistack may send a request, and a transport that holds it to that.

A URL npistack is told to call (a webhook receiver; later the upstream registry or a sync source)
must not reach inside the network npistack runs in. ``check_url`` validates a URL without the
network: http or https, a host, no ``user:password@``, and a host that is not a refused name or
address literal (numeric forms such as ``2130706433`` or ``0`` included). ``resolve`` looks the host
up (every address) and refuses it when **any** address is

- loopback, private (RFC 1918, ``fc00::/7``), link-local, multicast, reserved, unspecified,
  shared (CGNAT ``100.64.0.0/10``) or otherwise not globally routable,
- a cloud metadata address (``169.254.169.254``, ``fd00:ec2::254``, ...),
- an IPv4-mapped, 6to4 or NAT64 IPv6 address embedding one of those.

Names are refused too: ``localhost`` (and ``*.localhost``) and the metadata service names
(``metadata.google.internal``, ...). An **allow-list** (``Policy.allow``, the setting
``NPISTACK_WEBHOOK_ALLOW_HOSTS``: host names, addresses and CIDRs) lets chosen hosts or networks
through, for tests and for private deployments whose receivers live on a private network. A
metadata address is let through only by an entry naming exactly that address.

``GuardedTransport`` is an ``httpx`` transport that enforces this on every connection and **pins**
the address: inside ``with attempt(total_s) as a: a.pin(target, addresses)`` it connects only to
the addresses already checked
(so DNS cannot answer differently between the check and the connection: no rebinding), while the
request keeps its URL, so the ``Host`` header, TLS SNI and certificate verification are those of
the host name. Without a pin it resolves and checks itself. Every socket operation of an attempt
is bounded by what is left of the attempt's total deadline (connect, TLS, write and every read),
so a peer that trickles bytes cannot hold it longer than the deadline. Connections are not kept
alive (each attempt is its own connection) and proxies from the environment are ignored.

Nothing here speaks SQL or HTTP-server objects; callers map ``OutboundError`` to their own errors.
"""

from __future__ import annotations

import contextlib
import contextvars
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from npistack.errors import NpistackError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], Sequence[str]]
"""``(host, port) -> addresses`` (strings); raises OSError when the name does not resolve."""

MAX_URL = 2000

METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, Oracle, DigitalOcean, ...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.169.253",  # AWS DNS
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::253",
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure WireServer (a public address)
    )
)
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.internal",
        "instance-data",
        "instance-data.ec2.internal",
        "kubernetes.default",
        "kubernetes.default.svc",
    }
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_LEGACY_V4 = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}$", re.IGNORECASE)


class OutboundError(NpistackError):
    """A URL npistack will not call, or cannot reach; the message says why in one line."""


class Refused(OutboundError):
    """The URL or what its host resolves to is not allowed (the guard's decision)."""


class Unresolved(OutboundError):
    """The host name does not resolve (now): nothing was refused, nothing can be sent."""


@dataclass(frozen=True)
class Target:
    """A checked URL's parts: scheme, the host as the URL spells it (lowercase, no brackets), port."""

    url: str
    scheme: str
    host: str
    port: int
    literal: IPAddress | None  # the host is an address (any IPv4 spelling inet_aton accepts)


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``getaddrinfo`` gives for ``host`` (TCP), in its order."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    out: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]  # an IPv6 zone id is not part of the address
        if addr not in out:
            out.append(addr)
    return out


@dataclass(frozen=True)
class Policy:
    """What the guard lets through: nothing internal, except the hosts and networks of ``allow``."""

    allow_hosts: frozenset[str] = frozenset()
    allow_nets: tuple[IPNetwork, ...] = ()
    resolver: Resolver = field(default=system_resolver, compare=False)

    @classmethod
    def from_setting(cls, allow: str | Iterable[str] = "", *, resolver: Resolver | None = None) -> Policy:
        """From a comma-separated (or iterable) allow-list of host names, addresses and CIDRs.

        Raises OutboundError on an entry that is neither (e.g. ``10.0.0.0/33``)."""
        entries = allow.split(",") if isinstance(allow, str) else list(allow)
        hosts: set[str] = set()
        nets: list[IPNetwork] = []
        for raw in entries:
            entry = raw.strip().lower().strip("[]")
            if not entry:
                continue
            if "/" in entry or _is_ip(entry):
                try:
                    nets.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise OutboundError(
                        f"allow-list entry {raw.strip()!r} is not an address or CIDR (e.g. 10.0.0.0/8)"
                    ) from None
            elif re.fullmatch(r"[a-z0-9_.-]+", entry):
                hosts.add(entry.rstrip("."))
            else:
                raise OutboundError(
                    f"allow-list entry {raw.strip()!r} is not a host name, an address or a CIDR"
                )
        return cls(frozenset(hosts), tuple(nets), resolver or system_resolver)

    def host_allowed(self, host: str) -> bool:
        return host.rstrip(".").lower() in self.allow_hosts

    def address_allowed(self, ip: IPAddress) -> bool:
        if ip in METADATA_ADDRESSES:  # only an entry naming exactly this address
            return any(net.num_addresses == 1 and ip in net for net in self.allow_nets)
        return any(ip.version == net.version and ip in net for net in self.allow_nets)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def refusal(ip: IPAddress) -> str | None:
    """Why the guard refuses an address (``"a loopback address"``), or None if it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            inner = refusal(embedded)
            return f"an IPv6 form of {embedded}, {inner}" if inner else None
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    checks = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a shared (CGNAT) address"),
        (ip.is_reserved, "a reserved address"),
        (ip.is_private, "a private address"),
        (not ip.is_global, "not a globally routable address"),
    )
    for hit, why in checks:
        if hit:
            return why
    return None


_HINT = "; to allow it (tests, private deployments) add it to NPISTACK_WEBHOOK_ALLOW_HOSTS"


def _literal(host: str) -> IPAddress | None:
    """The address a host spells, in any form the system resolver reads as one (``127.1``,
    ``2130706433``, ``0x7f.0.0.1``, ``0``), or None for a name."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_V4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def _spelled(host: str, ip: IPAddress) -> str:
    return f"{host} is" if host == str(ip) else f"{host} is {ip},"


def check_url(url: str, policy: Policy) -> Target:
    """The URL's parts if npistack may call it as far as can be told without DNS; else Refused.

    http or https, a host, no ``user:password@``, at most ``MAX_URL`` characters, no spaces or
    control characters; a host that is an address must pass ``refusal``, a name must not be
    ``localhost``/``*.localhost`` or a metadata service name (unless allowed)."""
    url = url.strip()
    if not url or len(url) > MAX_URL:
        raise Refused(f"url must be an http:// or https:// URL of at most {MAX_URL} characters")
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        raise Refused("url must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        port = parts.port  # raises on a port that is not a number from 0 to 65535
    except ValueError as e:
        raise Refused(f"url {url!r} cannot be parsed: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise Refused(f"url {url!r} must start with http:// or https://")
    if "@" in parts.netloc:
        raise Refused(f"url {url!r} must not carry a user name or password (user:password@host)")
    if not host:
        raise Refused(f"url {url!r} has no host")
    if port == 0:
        raise Refused(f"url {url!r} has port 0")
    host = host.lower()
    port = port or (443 if scheme == "https" else 80)
    literal = _literal(host)
    target = Target(url, scheme, host, port, literal)
    if policy.host_allowed(host):
        return target
    if literal is not None:
        why = None if policy.address_allowed(literal) else refusal(literal)
        if why:
            raise Refused(f"url {url!r}: {_spelled(host, literal)} {why}{_HINT}")
        return target
    name = host.rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        raise Refused(f"url {url!r}: {host} is this machine (loopback){_HINT}")
    if name in METADATA_NAMES:
        raise Refused(f"url {url!r}: {host} is a cloud metadata service{_HINT}")
    return target


def resolve(target: Target, policy: Policy, *, timeout_s: float | None = None) -> list[IPAddress]:
    """Every address the target's host resolves to, if none is refused; Refused names the first
    refused one, Unresolved says the name does not resolve (or not within ``timeout_s``)."""
    if target.literal is not None:
        if not policy.host_allowed(target.host) and not policy.address_allowed(target.literal):
            why = refusal(target.literal)
            if why:
                raise Refused(f"{_spelled(target.host, target.literal)} {why}{_HINT}")
        return [target.literal]
    found = _lookup(policy.resolver, target.host, target.port, timeout_s)
    addresses: list[IPAddress] = []
    for text in found:
        try:
            ip = ipaddress.ip_address(text.split("%", 1)[0])
        except ValueError:
            raise Unresolved(f"{target.host} resolved to {text!r}, which is not an address") from None
        if ip not in addresses:
            addresses.append(ip)
    if not addresses:
        raise Unresolved(f"{target.host} does not resolve to any address")
    if policy.host_allowed(target.host):
        return addresses
    for ip in addresses:
        why = None if policy.address_allowed(ip) else refusal(ip)
        if why:
            raise Refused(f"{target.host} resolves to {ip}, {why}{_HINT}")
    return addresses


def _lookup(resolver: Resolver, host: str, port: int, timeout_s: float | None) -> list[str]:
    """``resolver(host, port)`` within ``timeout_s`` (getaddrinfo cannot be interrupted: a lookup
    that takes longer is left to finish in its own daemon thread)."""
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(list(resolver(host, port)))
        except (OSError, UnicodeError) as e:
            result.append(e)

    if timeout_s is None:
        run()
    else:
        t = threading.Thread(target=run, name="outbound-resolve", daemon=True)
        t.start()
        t.join(max(timeout_s, 0.0))
        if not result:
            raise Unresolved(f"{host} did not resolve within {timeout_s:g} s")
    answer = result[0]
    if isinstance(answer, BaseException):
        reason = getattr(answer, "strerror", None) or str(answer) or type(answer).__name__
        raise Unresolved(f"{host} does not resolve: {reason}")
    return [str(a) for a in answer]


def check(url: str, policy: Policy, *, timeout_s: float | None = None) -> tuple[Target, list[IPAddress]]:
    """``check_url`` then ``resolve``: the target and its checked addresses (to pin)."""
    target = check_url(url, policy)
    return target, resolve(target, policy, timeout_s=timeout_s)


# -- one attempt: its deadline and its pinned addresses -----------------------------------------


class Attempt:
    """One outbound attempt: its total deadline and, once checked, the addresses it may connect to."""

    def __init__(self, total_s: float) -> None:
        self.total_s = total_s
        self.deadline = time.monotonic() + total_s
        self.hosts: frozenset[str] = frozenset()
        self.addresses: tuple[IPAddress, ...] = ()

    def left(self) -> float:
        """Seconds left before the deadline (0 when it passed)."""
        return max(0.0, self.deadline - time.monotonic())

    def pin(self, target: Target, addresses: Sequence[IPAddress]) -> None:
        """Connect to ``target``'s host only at these (checked) addresses."""
        names = {target.host}
        with contextlib.suppress(httpx.InvalidURL, UnicodeError):  # the name as httpcore spells it
            names.add(httpx.URL(target.url).raw_host.decode("ascii").lower())
        self.hosts, self.addresses = frozenset(names), tuple(addresses)


_ATTEMPT: contextvars.ContextVar[Attempt | None] = contextvars.ContextVar("outbound_attempt", default=None)


@contextlib.contextmanager
def attempt(total_s: float) -> Iterator[Attempt]:
    """Within this block, a ``GuardedTransport`` request made in this thread ends by ``total_s``
    from now (every socket operation is bounded by what is left) and, once ``Attempt.pin`` was
    called, connects only to the pinned addresses."""
    current = Attempt(total_s)
    token = _ATTEMPT.set(current)
    try:
        yield current
    finally:
        _ATTEMPT.reset(token)


def _left(deadline: float | None, timeout: float | None, kind: type[Exception]) -> float | None:
    """The timeout of one socket operation: the smaller of its own and what is left of the attempt."""
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise kind("the attempt's total deadline passed")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the attempt's deadline."""

    def __init__(self, inner: httpcore.NetworkStream, deadline: float | None) -> None:
        self._inner = inner
        self._deadline = deadline

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _left(self._deadline, timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _left(self._deadline, timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        budget = _left(self._deadline, timeout, httpcore.ConnectTimeout)
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, budget), self._deadline)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _GuardedBackend(httpcore.NetworkBackend):
    """Connects only to checked addresses: the attempt's pin, else what ``resolve`` allows now."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self._sync = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        current = _ATTEMPT.get()
        deadline = current.deadline if current else None
        if current is not None and host.lower() in current.hosts:
            addresses = list(current.addresses)
        else:
            target = Target(f"//{host}:{port}", "", host.lower(), port, _literal(host.lower()))
            budget = _left(deadline, timeout, httpcore.ConnectTimeout)
            try:
                if target.literal is None and target.host.rstrip(".") in METADATA_NAMES:
                    raise Refused(f"{host} is a cloud metadata service{_HINT}")
                addresses = resolve(target, self.policy, timeout_s=budget)
            except OutboundError as e:
                raise httpcore.ConnectError(str(e)) from None
        last: Exception | None = None
        for ip in addresses:
            budget = _left(deadline, timeout, httpcore.ConnectTimeout)
            try:
                stream = self._sync.connect_tcp(str(ip), port, budget, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as e:
                last = e
                continue
            return _DeadlineStream(stream, deadline)
        raise last or httpcore.ConnectError(f"{host} has no address to connect to")

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not allowed")

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over ``_GuardedBackend``: checked, pinned, deadline-bound connections, one
    per request (no keep-alive, so a connection made for one host's TLS name serves nothing else),
    no proxies."""

    def __init__(self, policy: Policy, *, max_connections: int = 64) -> None:
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=0)
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=max_connections,
            max_keepalive_connections=0,
            network_backend=_GuardedBackend(policy),
        )
