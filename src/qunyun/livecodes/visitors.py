"""What a scan records about its visitor: a random cookie id, the user agent's class and the IP
address truncated to its /24 (IPv4) or /48 (IPv6) network. The full address is never stored:
member data is personal data (PIPL), and a network is enough to tell a flood from one place."""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import threading
from functools import lru_cache

VISITOR_COOKIE = "qy_v"
VISITOR_COOKIE_MAX_AGE = 365 * 24 * 3600
_VISITOR_RE = re.compile(r"^[A-Za-z0-9_-]{16,32}$")


_ID_BYTES = 16
_random = bytearray()
_random_lock = threading.Lock()


def new_visitor_id() -> str:
    """A fresh visitor id (128 random bits from the OS, URL-safe, 22 characters). The bits are
    drawn 4 KiB at a time: one system call per 256 ids, not one per scan."""
    with _random_lock:
        if len(_random) < _ID_BYTES:
            _random.extend(os.urandom(4096))
        chunk = bytes(_random[:_ID_BYTES])
        del _random[:_ID_BYTES]
    return base64.urlsafe_b64encode(chunk).rstrip(b"=").decode()


def valid_visitor_id(value: str | None) -> str | None:
    """The cookie's visitor id if it looks like one we issued; None otherwise (a new visitor)."""
    if value and _VISITOR_RE.fullmatch(value):
        return value
    return None


@lru_cache(maxsize=4096)
def ip_prefix(address: str | None) -> str | None:
    """``203.0.113.7`` → ``203.0.113.0/24``; ``2001:db8:1:2::1`` → ``2001:db8:1::/48``; None for
    anything that is not an IP address."""
    if not address:
        return None
    parts = address.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) <= 255 for p in parts):
        return f"{int(parts[0])}.{int(parts[1])}.{int(parts[2])}.0/24"  # the common case, without ipaddress
    try:
        ip = ipaddress.ip_address(address.strip().split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def ua_class(user_agent: str | None) -> str:
    """The class of a user agent: ``wechat`` (WeChat's in-app browser), ``wecom`` (WeCom's),
    ``qq``, ``alipay``, ``bot``, ``mobile``, ``desktop`` or ``other``."""
    ua = (user_agent or "").lower()
    if not ua:
        return "other"
    if "wxwork" in ua:
        return "wecom"
    if "micromessenger" in ua:
        return "wechat"
    if "alipayclient" in ua:
        return "alipay"
    if " qq/" in ua or "mqqbrowser" in ua:
        return "qq"
    if any(word in ua for word in ("bot", "spider", "crawler", "curl/", "python-", "httpx", "wget")):
        return "bot"
    if any(word in ua for word in ("mobile", "android", "iphone", "ipad", "harmonyos")):
        return "mobile"
    if any(word in ua for word in ("windows", "macintosh", "x11", "linux")):
        return "desktop"
    return "other"
