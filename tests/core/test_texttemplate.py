"""The template language shared by naming templates, onboarding texts and SOP scripts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qunyun.texttemplate import TemplateError, fill, fill_lenient, placeholders


def test_placeholders_and_escaped_braces() -> None:
    assert fill("欢迎 {nickname} 加入{{群}}", {"nickname": "老王"}) == "欢迎 老王 加入{群}"


def test_an_unknown_placeholder_names_itself_and_its_position() -> None:
    with pytest.raises(TemplateError) as caught:
        fill("hi {nickname.__class__}", {"nickname": "x"})
    assert caught.value.token == "{nickname.__class__}"
    assert caught.value.position == 4
    assert not caught.value.stray_brace


def test_a_stray_brace_is_an_error() -> None:
    with pytest.raises(TemplateError) as caught:
        fill("a } b", {})
    assert caught.value.stray_brace and caught.value.position == 3


def test_allowed_narrows_what_values_offer() -> None:
    with pytest.raises(TemplateError):
        fill("{secret}", {"secret": "s", "name": "n"}, allowed=("name",))


def test_lenient_leaves_what_it_cannot_fill() -> None:
    assert fill_lenient("{a} {b} } {{", {"a": "1"}) == "1 {b} } {"


def test_placeholders_in_order() -> None:
    assert list(placeholders("{a}{{b}}{c}{a}")) == ["a", "c", "a"]


@given(st.text(alphabet=st.characters(blacklist_characters="{}"), max_size=40))
def test_text_without_braces_is_itself(text: str) -> None:
    assert fill(text, {}) == text == fill_lenient(text, {})
