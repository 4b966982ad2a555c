"""What a scan keeps of its visitor: the network, never the address; the user agent's class."""

from __future__ import annotations

from qunyun.livecodes.visitors import ip_prefix, ua_class, valid_visitor_id


def test_addresses_are_truncated_to_24_or_48_bits() -> None:
    assert ip_prefix("203.0.113.77") == "203.0.113.0/24"
    assert ip_prefix("2001:db8:abcd:12:1:2:3:4") == "2001:db8:abcd::/48"
    assert ip_prefix("::ffff:198.51.100.9") == "198.51.100.0/24"
    assert ip_prefix("testclient") is None and ip_prefix(None) is None


def test_user_agent_classes() -> None:
    assert ua_class("Mozilla/5.0 (iPhone) AppleWebKit MicroMessenger/8.0.47") == "wechat"
    assert ua_class("Mozilla/5.0 (Linux; Android 13) wxwork/4.1 MicroMessenger/7.0.1") == "wecom"
    assert ua_class("Mozilla/5.0 (Linux; Android 14; Pixel) Mobile Safari/537.36") == "mobile"
    assert ua_class("Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120") == "desktop"
    assert ua_class("curl/8.5.0") == "bot"
    assert ua_class("") == "other"


def test_only_ids_we_could_have_issued_are_taken_from_the_cookie() -> None:
    assert valid_visitor_id("abcdefghijklmnopqrstuv") == "abcdefghijklmnopqrstuv"
    assert valid_visitor_id("x") is None and valid_visitor_id("a" * 20 + "<script>") is None
