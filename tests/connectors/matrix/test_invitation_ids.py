"""What the scan page's invitation form takes as a Matrix ID (pure: no homeserver)."""

from __future__ import annotations

import pytest

from qunyun.errors import InvalidInput
from qunyun.livecodes.invitations import matrix_id, offers_invitation


@pytest.mark.parametrize(
    "value",
    ["@alice:matrix.org", "  @bob.smith_1=x/y+z:example.com  ", "@c:localhost:8448", "@d:[::1]:8008", "@E:server"],
)
def test_a_matrix_id_is_taken_without_surrounding_spaces(value: str) -> None:
    assert matrix_id(value) == value.strip()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "alice:matrix.org",
        "@alice",
        "@:matrix.org",
        "@alice:",
        "@al ice:matrix.org",
        "#room:matrix.org",
        "@alice:matrix.org:99999999",
        "@" + "a" * 250 + ":x.org",
    ],
)
def test_anything_else_is_refused_naming_the_field(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        matrix_id(value)
    assert caught.value.field == "matrix_id"


def test_only_platforms_whose_link_joins_are_not_attributable_offer_an_invitation() -> None:
    assert offers_invitation("matrix")
    assert not offers_invitation("telegram") and not offers_invitation("wecom")
    assert not offers_invitation("simulator")  # its joins name the link
    assert not offers_invitation("") and not offers_invitation("nope")
