"""The console's tables: click-to-sort headers in pinyin order, "no matches" apart from "nothing
yet", members' in-group status, the two meanings of region labelled apart, out-of-range numbers
in URLs, and error pages that keep the navigation."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from qunyun.models import Group, Member, Staff
from qunyun.team.service import create_organisation
from tests.api.conftest import World, console_login

# No polyphonic characters: PostgreSQL's ICU and pypinyin agree on every reading.
CITIES = ["上海群", "北京群", "南京群", "天津群", "杭州群"]
PINYIN_ORDER = ["北京群", "杭州群", "南京群", "上海群", "天津群"]  # bei hang nan shang tian
BIG = "9223372036854775808"  # 2**63: one past BIGINT


def _add_groups(world: World) -> None:
    with world.db() as s:
        for i, name in enumerate(CITIES):
            s.add(
                Group(
                    org_id=world.org_a,
                    platform="api",
                    external_id=f"city-{i}",
                    name=name,
                    tier="normal",
                    region="",
                    capacity=500,
                    status="active",
                    member_count=i,
                    created_at=datetime(2026, 3, 1, tzinfo=UTC),
                )
            )
        s.commit()


def _column(html: str, table: str, attribute: str) -> list[str]:
    """The link texts of the first cell of each row of table ``table``."""
    body = html.split(f'id="{table}"', 1)[1].split("</tbody>", 1)[0]
    return [unescape(m) for m in re.findall(rf"<tr {attribute}=\"\d+\">\s*<td><a [^>]*>([^<]*)</a>", body)]


def test_group_list_sorts_by_clicked_header_in_pinyin_order(client: TestClient, world: World) -> None:
    _add_groups(world)
    console_login(client, "lead")
    html = client.get("/groups?sort=name&dir=asc").text
    names = [n for n in _column(html, "groups-table", "data-group-id") if n in CITIES]
    assert names == PINYIN_ORDER  # not code-point order (上 < 北 < 南 < 天 < 杭)
    # The active column's header carries an arrow and links to the other direction, from page 1.
    header = re.search(r'<th aria-sort="ascending" data-sort="name"><a [^>]*href="([^"]+)"', html)
    assert header and "↑" in html.split('data-sort="name"', 1)[1].split("</th>", 1)[0]
    assert "sort=name" in header.group(1) and "dir=desc" in unescape(header.group(1))
    html = client.get(unescape(header.group(1))).text
    assert [n for n in _column(html, "groups-table", "data-group-id") if n in CITIES] == PINYIN_ORDER[::-1]
    # Numbers: largest first on the first click; an unknown column falls back to the name.
    by_members = client.get("/groups?sort=members").text
    assert [n for n in _column(by_members, "groups-table", "data-group-id") if n in CITIES] == CITIES[::-1]
    fallback = client.get("/groups?sort=password_hash%20desc")
    assert fallback.status_code == 200
    assert [n for n in _column(fallback.text, "groups-table", "data-group-id") if n in CITIES] == PINYIN_ORDER
    # Filtering keeps the order: the filter form carries it.
    assert '<input type="hidden" name="sort" value="members">' in by_members


def test_member_list_and_staff_sort_by_name(client: TestClient, world: World) -> None:
    with world.db() as s:
        for key, name in zip(("m1", "m3", "m4"), ("天天", "北北", "杭杭"), strict=True):
            s.execute(update(Member).where(Member.id == world.members[key]).values(display_name=name))
        s.execute(update(Staff).where(Staff.id == world.staff["owner"]).values(display_name="上官"))
        s.execute(update(Staff).where(Staff.id == world.staff["admin"]).values(display_name="白白"))
        s.commit()
    console_login(client, "lead")
    names = _column(client.get("/members?sort=name").text, "members-table", "data-member-id")
    assert [n for n in names if n in ("天天", "北北", "杭杭")] == ["北北", "杭杭", "天天"]
    staff = client.get("/staff?sort=name").text
    assert staff.index('data-staff="admin"') < staff.index('data-staff="owner"')  # bai < shang
    staff = client.get("/staff?sort=name&dir=desc").text
    assert staff.index('data-staff="admin"') > staff.index('data-staff="owner"')


def test_no_matches_differs_from_nothing_yet(client: TestClient, world: World, password_hash: str) -> None:
    console_login(client, "lead")
    groups = client.get("/groups?q=no-such-group").text
    assert 'data-empty="no-matches"' in groups and "没有符合筛选条件的群" in groups
    assert 'class="clear-filters"' in groups
    members = client.get(f"/members?group={world.groups['g2']}").text  # m2 left g2
    assert 'data-empty="no-matches"' in members and "清除筛选" in members
    # A new organisation: nothing at all, and nothing to clear.
    with world.db() as s:
        organisation = create_organisation(s, name="空空", slug="empty")
        s.add(
            Staff(
                org_id=organisation.id,
                username="empty-lead",
                display_name="Lead",
                password_hash=password_hash,
                role="lead",
                created_at=datetime.now(UTC),
            )
        )
        s.commit()
    client.cookies.clear()
    console_login(client, "empty-lead")
    for path, text in (("/groups", "还没有群"), ("/members", "还没有成员")):
        html = client.get(path).text
        assert 'data-empty="nothing-yet"' in html and text in html and "clear-filters" not in html
        # Even with a filter, an empty organisation has nothing yet rather than no matches.
        assert 'data-empty="nothing-yet"' in client.get(f"{path}?q=x").text


def test_members_in_group_status_with_when(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    g2 = world.groups["g2"]
    current = client.get(f"/groups/{g2}").text
    assert 'data-empty="nothing-yet"' in current and "群里还没有成员" in current
    left = client.get(f"/groups/{g2}?status=left").text
    row = left.split(f'data-member-id="{world.members["m2"]}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-status="left"' in row and re.search(r"已退群 · \d{4}-\d\d-\d\d \d\d:\d\d", row)
    everyone = client.get(f"/groups/{world.groups['g1']}?status=all").text
    row = everyone.split(f'data-member-id="{world.members["m1"]}"', 1)[1].split("</tr>", 1)[0]
    assert 'data-status="in"' in row and "在群" in row
    # The member's page says the same per group.
    m2 = client.get(f"/members/{world.members['m2']}").text
    assert 'data-status="left"' in m2.split(f'data-group-id="{g2}"', 1)[1].split("</tr>", 1)[0]
    m1 = client.get(f"/members/{world.members['m1']}").text
    assert 'data-status="in"' in m1.split(f'data-group-id="{world.groups["g1"]}"', 1)[1].split("</tr>", 1)[0]


def test_region_of_a_group_and_of_a_member_are_labelled_apart(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    assert "群地区" in client.get("/groups").text and "常住地区" not in client.get("/groups").text
    assert "常住地区" in client.get("/members").text
    detail = client.get(f"/groups/{world.groups['g1']}").text
    assert "群地区" in detail and "常住地区" in detail  # the group's own, and its members' portrait
    assert "常住地区" in client.get(f"/members/{world.members['m1']}").text
    english = client.get("/members?lang=en").text
    assert "Home region" in english


@pytest.mark.parametrize(
    "path",
    [
        f"/groups?page={BIG}",
        "/groups?page=" + "9" * 5000,
        f"/groups?community={BIG}",
        f"/groups?owner={BIG}&page=2",
        f"/members?page={BIG}",
        f"/members?group={BIG}",
        f"/members?tag=99999999999999999999&channel={BIG}",
    ],
)
def test_out_of_range_numbers_in_lists_give_a_clean_page(client: TestClient, world: World, path: str) -> None:
    console_login(client, "lead")
    response = client.get(path)
    assert response.status_code == 200, response.text[:500]
    assert "退出登录" in response.text


def test_out_of_range_ids_are_404_with_the_navigation(client: TestClient, world: World) -> None:
    console_login(client, "lead")
    ids = (f"/groups/{BIG}", "/groups/3000000000", "/members/99999999999999999999", "/groups/abc", "/members/-1")
    for path in ids:
        response = client.get(path)
        assert response.status_code == 404, path
        assert "页面不存在" in response.text and "退出登录" in response.text, path
    timeline = client.get(f"/groups/{world.groups['g1']}?before={BIG}&page={BIG}")
    assert timeline.status_code == 200


def test_error_pages_keep_navigation_and_sign_out_in_chinese(client: TestClient, world: World) -> None:
    console_login(client, "owner")
    for path in (f"/groups/{world.groups['g3']}", "/no-such-page"):
        response = client.get(path)
        assert response.status_code == 404
        html = response.text
        assert '<html lang="zh-CN">' in html and "页面不存在" in html
        assert 'nav class="sections"' in html and 'href="/groups"' in html
        assert 'action="/logout"' in html and "退出登录" in html
        assert "Not Found" not in html  # no English leftover from the framework
    english = client.get("/no-such-page?lang=en").text
    assert "Sign out" in english and 'nav class="sections"' in english
    # Logged out: the same page without the navigation (nothing to navigate to).
    client.cookies.clear()
    anonymous = client.get("/no-such-page")
    assert anonymous.status_code == 404 and "页面不存在" in anonymous.text
    assert 'nav class="sections"' not in anonymous.text and "退出登录" not in anonymous.text
