"""The normalization in front of the matcher: each folding with an example, and the alignment
back to the original text checked by Hypothesis."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qunyun.moderation.normalize import align, is_digit_char, is_noise, is_word_char, normalize


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SeX", "sex"),  # case
        ("ｓｅｘ１２３", "sex123"),  # fullwidth
        ("𝐬𝐞𝐱 𝓯𝓾𝓬𝓴 𝕡𝕠𝕣𝕟", "sexfuckporn"),  # mathematical alphanumerics
        ("ⓢⓔⓧ⒮", "sexs"),  # circled and parenthesized letters
        ("ѕех ρоrn ᴘᴏʀɴ", "sexpornporn"),  # Cyrillic, Greek, small capitals
        ("🇸🇪🇽", "sex"),  # regional indicators
        ("fǎ lún gōng", "falungong"),  # diacritics, spaces
        ("法輪功 網絡賭場", "法轮功网络赌场"),  # traditional → simplified
        ("①②⑴⑵１２", "121212"),  # circled, parenthesized, fullwidth digits
        ("一二三〇 壹贰叁", "1230123"),  # Chinese numerals, plain and financial
        ("法.轮-功!", "法轮功"),  # punctuation
        ("法🔥轮❤️功", "法轮功"),  # emoji and variation selector
        ("法\u200b轮\u200d功\ufeff", "法轮功"),  # zero-width space, joiner, BOM
        ("法法轮轮轮功功", "法轮功"),  # repeated CJK characters
        ("class book 1100", "classbook1100"),  # Latin letters and digits never collapse
        ("法和轮功", "法和轮功"),  # another CJK character is never noise
        ("™℃", "c"),  # a symbol for one letter reads as it; ™ is noise
    ],
)
def test_normalize_examples(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_character_classes() -> None:
    assert is_word_char("a") and is_word_char("Ｓ") and is_word_char("ѕ") and is_word_char("5")
    assert not is_word_char("四") and not is_word_char("法") and not is_word_char(" ")
    assert is_digit_char("④") and is_digit_char("９") and not is_digit_char("四") and not is_digit_char("x")
    assert is_noise(" ") and is_noise("\u200b") and is_noise("😀") and not is_noise("法")


def test_repeats_span_the_whole_run() -> None:
    at = align("法法轮轮功功")
    assert at.normalized == "法轮功"
    assert (at.starts, at.ends, at.runs) == ([0, 2, 4], [2, 4, 6], [2, 2, 2])


# Any text: CJK, Latin, digits, numerals, noise, look-alikes, emoji, zero-width characters.
_ALPHABET = "法轮功輪的了陆肆六四一二①⑥⑩ßａbcSsEeXx ѕех.-!😀\u200b\ufe0f\U000e0101 12"


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=_ALPHABET, max_size=30))
def test_alignment_matches_normalize(text: str) -> None:
    at = align(text)
    assert at.normalized == normalize(text)
    n = len(at.normalized)
    assert len(at.starts) == len(at.ends) == len(at.runs) == n
    for j in range(n):
        assert 0 <= at.starts[j] < at.ends[j] <= len(text)
        if j:
            assert at.starts[j] >= at.starts[j - 1]
    assert normalize(at.normalized) == at.normalized  # idempotent


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=20))
def test_any_unicode_normalizes_idempotently(text: str) -> None:
    once = normalize(text)
    assert normalize(once) == once
    assert align(text).normalized == once
