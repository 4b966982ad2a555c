"""Live codes (活码, M3): one stable URL per channel that routes each scan to a group with room.

``service`` (staff: codes, pools, QR images), ``routing`` (the scan path), ``threshold`` (entry
thresholds), ``attribution`` (lookups for matching joins to scans), ``blacklist``, ``jobs``
(invite links, QR expiry tasks, full pools), ``scan`` (``GET /c/{code}``), ``endpoints``
(``/api/v1/livecodes``), ``cli`` (``qunyun livecodes``). docs/livecodes.md tells the whole story.
"""
