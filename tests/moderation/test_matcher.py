"""The evasion-resistant matcher: the quality corpus (recall and false positives), each
technique on its own, spans in the original text, the allow list, pinyin, the real lexicon,
and Hypothesis properties (noise between a word's characters, a naive reference)."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qunyun.moderation._match_corpus import corpus_matcher, load_cases, score
from qunyun.moderation.matcher import build_matcher
from qunyun.moderation.types import Hit, WordEntry
from tests.shared_data import LEXICON

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "moderation"

WORDS = [
    WordEntry("法轮功", "politics", pinyin=True),
    WordEntry("六四", "politics"),
    WordEntry("8964", "politics"),
    WordEntry("六合彩", "gambling"),
    WordEntry("sex", "porn"),
    WordEntry("ass", "porn"),
    WordEntry("妈妈的", "custom"),
    WordEntry("02lh.info", "ads"),
]


@pytest.fixture(scope="module")
def matcher():  # type: ignore[no-untyped-def]
    return build_matcher(WORDS)


def found(matcher, text: str) -> list[tuple[str, int, int]]:  # type: ignore[no-untyped-def]
    return [(h.word, h.start, h.end) for h in matcher.find(text)]


def test_corpus_recall_and_no_false_positive() -> None:
    cases = load_cases(FIXTURES / "corpus.jsonl")
    result = score(corpus_matcher(FIXTURES), cases)
    techniques = {c.technique for c in cases}
    assert techniques >= {"plain", "case", "width", "traditional", "numbers", "noise", "zero_width", "emoji"}
    assert techniques >= {"repeat", "lookalike", "pinyin", "whole_word", "mixed", "clean"}
    assert result.cases >= 100 and result.clean >= 50
    assert result.recall >= 0.95, result.misses
    assert result.false_positives == 0, result.flagged


def test_hit_reports_word_as_listed_category_and_original_span(matcher) -> None:  # type: ignore[no-untyped-def]
    assert matcher.find("大家好，法·輪·功好") == [Hit("法轮功", "politics", 4, 9)]
    assert found(matcher, "") == []
    assert found(matcher, "早上好") == []


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("法x轮x功", None),  # a letter is not noise
        ("法和轮功", None),  # never skip over another CJK character
        ("法 轮 功", (0, 5)),
        ("法\u200b轮\u200b功", (0, 5)),
        ("法😀轮😀功", (0, 5)),
        ("法法轮轮功功了", (0, 6)),  # the repeats belong to the span
        ("FA LUN GONG", (0, 11)),  # pinyin
        ("falungonghao", None),  # pinyin is a whole word too
    ],
)
def test_noise_repeats_and_pinyin(matcher, text: str, span: tuple[int, int] | None) -> None:  # type: ignore[no-untyped-def]
    hits = found(matcher, text)
    assert hits == ([] if span is None else [("法轮功", *span)])


@pytest.mark.parametrize(
    ("text", "hit"),
    [
        ("sex", True),
        ("SEX!", True),
        ("性sex", True),
        ("s e x", True),
        ("s.e.x", True),
        ("ｓｅｘ", True),
        ("𝐬𝐞𝐱", True),
        ("ѕех", True),
        ("Sussex", False),
        ("essex", False),
        ("sexy", False),
        ("his ex", False),  # a gap between some letters only
        ("se x", False),
        ("class assistant", False),
        ("a glass of wine", False),
    ],
)
def test_latin_words_are_whole_words(matcher, text: str, hit: bool) -> None:  # type: ignore[no-untyped-def]
    assert bool(found(matcher, text)) is hit


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("八九六四", {"8964", "六四"}),
        ("捌玖陆肆", {"8964", "六四"}),
        ("⑧⑨⑥④", {"8964"}),  # 64 is inside the number 8964
        ("8.9.6.4", {"8964"}),
        ("⑥合彩", {"六合彩"}),
        ("陆合彩", {"六合彩"}),
        ("1989六四", {"六四"}),
        ("订单号 2023120589641234", set()),  # inside an order number
        ("价格 89.64 元", set()),  # a price is one number
        ("身高1.64米", set()),
        ("我姓陆，四川人", set()),  # 陆 is a surname here: noise between it and 四
        ("陆 合 彩", set()),
    ],
)
def test_numbers(matcher, text: str, words: set[str]) -> None:  # type: ignore[no-untyped-def]
    assert {w for w, _, _ in found(matcher, text)} == words


def test_doubled_characters_of_a_word_stay_doubled(matcher) -> None:  # type: ignore[no-untyped-def]
    assert found(matcher, "他妈妈的") == [("妈妈的", 1, 4)]
    assert found(matcher, "他妈妈妈的") == [("妈妈的", 1, 5)]
    assert found(matcher, "我妈的手机") == []


def test_a_word_with_its_own_separators(matcher) -> None:  # type: ignore[no-untyped-def]
    assert found(matcher, "上 02lh.info 看") == [("02lh.info", 2, 11)]
    assert found(matcher, "上02lhinfo看") == [("02lh.info", 1, 9)]
    assert found(matcher, "上 0 2 l h i n f o 看") == [("02lh.info", 2, 17)]
    assert found(matcher, "上 02 lh.info 看") == []  # gaps neither the word's, nor none, nor all


def test_allow_list_suppresses_hits_inside_allowed_terms() -> None:
    m = build_matcher([WordEntry("陆", "custom"), WordEntry("六四", "politics")], allow=["大陆", "六四分"])
    assert found(m, "大陆的朋友") == []
    assert found(m, "大 陆") == []  # the allowed term is normalized as well
    assert found(m, "陆先生") == [("陆", 0, 1)]
    assert found(m, "大陆的陆先生") == [("陆", 3, 4)]
    assert found(m, "六四分成") == []
    assert found(m, "六四事件") == [("六四", 0, 2)]
    # A listed word written with an ambiguous numeral matches only that character.
    assert found(m, "6点见") == []


def test_duplicates_junk_and_categories() -> None:
    m = build_matcher(
        [
            WordEntry("法轮功", "politics"),
            WordEntry("法轮功", "politics"),
            WordEntry("法輪功", "politics"),
            WordEntry("法轮功", "custom"),
            WordEntry("   ", "custom"),
            WordEntry("***", "custom"),
            WordEntry(" 赌博 ", "gambling"),
        ]
    )
    # Words that normalize alike are reported once per category, as first listed.
    assert sorted((h.word, h.category) for h in m.find("法輪功")) == [("法轮功", "custom"), ("法轮功", "politics")]
    assert found(m, "赌博") == [("赌博", 0, 2)]
    assert build_matcher([]).find("anything") == []


def test_overlapping_hits_in_order() -> None:
    m = build_matcher([WordEntry("网络赌场"), WordEntry("赌场"), WordEntry("网络")])
    assert found(m, "在网络赌场玩") == [("网络", 1, 3), ("网络赌场", 1, 5), ("赌场", 3, 5)]
    assert m.first("在网络赌场玩") == Hit("网络", "custom", 1, 3)
    assert m.first("早上好") is None


def test_pinyin_only_when_asked_and_no_initials() -> None:
    m = build_matcher([WordEntry("色情", "porn", pinyin=True), WordEntry("赌博", "gambling")])
    assert found(m, "seqing网站") == [("色情", 0, 6)]
    assert found(m, "dubo") == []  # 赌博 was listed without pinyin
    assert found(m, "sq") == []  # initials are not matched
    assert found(m, "女儿 nver nuer") == []


def _lexicon() -> list[WordEntry]:
    words = []
    for path in sorted(LEXICON.glob("*.txt")):
        words += [WordEntry(line.strip(), path.stem) for line in path.read_text(encoding="utf-8").splitlines()]
    return words


def test_builds_from_the_real_lexicon() -> None:
    words = _lexicon()
    assert len(words) > 80_000  # junk, duplicates and one-letter entries included
    m = build_matcher(words)
    assert m.patterns > 40_000
    hits = {h.word for h in m.find("法·輪·功和八九六四")}
    assert "法轮功" in hits and "8964" in hits
    # 64 is in the lexicon: an order number does not fire it, nor does Sussex fire sex.
    assert not {"64", "8964", "sex"} & {h.word for h in m.find("订单号 2023120589641234, Sussex")}


# Hypothesis: noise between the characters of a listed word, inside ordinary text.
_CJK_WORDS = ["法轮功", "六合彩", "网络赌场", "代开发票", "裸聊", "援交"]
_CONTEXT = "早上好大家今天天气不错我们去吃饭吧"  # shares no character with the words
_NOISE = [" ", ".", "-", "*", "|", "~", "、", "。", "😀", "🔥", "❤️", "\u200b", "\u200d", "\ufe0f", "👍🏻", "\n"]


@settings(max_examples=300, deadline=None)
@given(
    word=st.sampled_from(_CJK_WORDS),
    gaps=st.lists(st.lists(st.sampled_from(_NOISE), max_size=3).map("".join), min_size=3, max_size=3),
    before=st.text(alphabet=_CONTEXT, max_size=8),
    after=st.text(alphabet=_CONTEXT, max_size=8),
)
def test_noise_between_characters_still_matches_with_the_span(
    word: str, gaps: list[str], before: str, after: str
) -> None:
    m = build_matcher([WordEntry(w) for w in _CJK_WORDS])
    written = "".join(c + g for c, g in itertools.zip_longest(word, gaps[: len(word) - 1], fillvalue=""))
    text = before + written + after
    assert found(m, text) == [(word, len(before), len(before) + len(written))]


@settings(max_examples=200, deadline=None)
@given(
    word=st.sampled_from(["sex", "porn", "casino", "viagra"]),
    sep=st.sampled_from(["", " ", ".", "-", "😀", "\u200b", " . "]),
    before=st.sampled_from(["", "看", "hi ", "(", "，"]),
    after=st.sampled_from(["", "吗", " now", "!", "。"]),
)
def test_latin_word_evenly_spaced_matches(word: str, sep: str, before: str, after: str) -> None:
    m = build_matcher([WordEntry("sex"), WordEntry("porn"), WordEntry("casino"), WordEntry("viagra")])
    written = sep.join(word)
    assert found(m, before + written + after) == [(word, len(before), len(before) + len(written))]


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="法轮功六合彩网络赌场大家好了", max_size=25))
def test_plain_cjk_agrees_with_a_naive_search(text: str) -> None:
    """On CJK text without repeats or evasions the matcher finds exactly the substrings."""
    words = ["法轮功", "六合彩", "网络赌场", "赌场", "网络", "大家"]
    text = "".join(c for i, c in enumerate(text) if i == 0 or c != text[i - 1])
    m = build_matcher([WordEntry(w) for w in words])
    naive = sorted((i, i + len(w), w) for w in words for i in range(len(text) - len(w) + 1) if text.startswith(w, i))
    assert sorted((s, e, w) for w, s, e in found(m, text)) == naive
