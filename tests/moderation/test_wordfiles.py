"""Word files: text and Excel in and out (a bad line or cell refuses the file, naming it), the
shipped default list, and the real downloaded lexicon (what it drops, and why)."""

from __future__ import annotations

import io

import pytest
from openpyxl import Workbook

from qunyun.errors import InvalidInput
from qunyun.moderation.policy import policy_from_words
from qunyun.moderation.rules import evaluate
from qunyun.moderation.types import Action, MessageContext, WordEntry
from qunyun.moderation.wordfiles import (
    default_words,
    read_excel,
    read_lexicon,
    read_lexicon_dir,
    read_text,
    write_excel,
    write_text,
)
from tests.shared_data import LEXICON


def test_text_lists_read_words_categories_pinyin_comments_and_bom() -> None:
    data = "\ufeff# 我们的词\n加微信\n\n博彩\t赌博\n  约炮\tporn\tpinyin \n刷单\tads\t\n博彩\tads\n".encode()
    words = read_text(data)
    assert words.entries == [
        WordEntry("加微信", "custom"),
        WordEntry("博彩", "gambling"),
        WordEntry("约炮", "porn", pinyin=True),
        WordEntry("刷单", "ads"),
    ]
    assert [(d.line, d.text, d.reason) for d in words.dropped] == [(7, "博彩", "duplicate")]
    assert words.summary() == {"kept": 4, "duplicate": 1}
    assert read_text(write_text(words.entries)).entries == words.entries
    assert read_text(b"a1\r\nb2\r\n").entries == [WordEntry("a1"), WordEntry("b2")]


@pytest.mark.parametrize(
    ("data", "line", "text"),
    [
        (b"ok\n\tads\n", 2, "line 2: a category without a word"),
        ("ok\n好\t\t\t\n".encode(), 2, "line 2: too many tab-separated fields"),
        ("ok\n好\t \n".encode(), 2, "line 2: an empty category after the tab"),
        (
            "ok\n好\tads\tmaybe\n".encode(),
            2,
            'line 2: the pinyin field must be pinyin, 拼音, yes or empty, not "maybe"',
        ),
        (b"ok\nfine\n\xff\xfe\n", 3, "line 3: not UTF-8 text"),
        (("x" * 65 + "\n").encode(), 1, "line 1: must be at most 64 characters"),
        (b"ok\nbad\x07word\n", 2, "line 2: must not contain control characters"),
    ],
)
def test_a_bad_line_refuses_the_file_naming_it(data: bytes, line: int, text: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        read_text(data)
    assert caught.value.detail["line"] == line
    assert caught.value.message.startswith(text)


def test_excel_round_trip_and_errors_by_row_and_column() -> None:
    entries = [WordEntry("博彩", "gambling"), WordEntry("约炮", "porn", pinyin=True), WordEntry("加微信", "诈骗")]
    assert read_excel(write_excel(entries)).entries == entries

    def book(rows: list[list[object]]) -> bytes:
        wb = Workbook()
        sheet = wb.active
        assert sheet is not None
        for row in rows:
            sheet.append(row)
        out = io.BytesIO()
        wb.save(out)
        return out.getvalue()

    words = read_excel(
        book([["备注", "Word", "类别"], ["x", "刷单", "广告"], [None, None, None], ["y", "刷单", "ads"]])
    )
    assert words.entries == [WordEntry("刷单", "ads")]
    assert [(d.line, d.reason) for d in words.dropped] == [(4, "duplicate")]
    with pytest.raises(InvalidInput) as caught:
        read_excel(book([["词", "分类", "拼音"], ["博彩", "赌博", ""], ["约炮", "色情", "maybe"]]))
    assert caught.value.localized("zh").startswith("第 3 行「拼音」列")
    assert caught.value.detail == {"row": 3, "column": "拼音"}
    with pytest.raises(InvalidInput) as caught:
        read_excel(book([["词", "分类"], ["博彩", "赌博"], [None, "色情"]]))
    assert caught.value.detail == {"row": 3, "column": "词"}
    with pytest.raises(InvalidInput) as caught:
        read_excel(book([["名称", "分类"], ["博彩", "赌博"]]))
    assert caught.value.detail == {"row": 1}
    with pytest.raises(InvalidInput):
        read_excel(b"not a workbook")


def test_the_default_list_is_small_categorized_and_quiet_on_chat() -> None:
    words = default_words()
    assert 100 <= len(words) <= 200
    assert {w.category for w in words} >= {"ads", "gambling", "porn"}
    policy = policy_from_words(words).compile()
    for text in ("管理员测试一下", "我女儿放学了", "陆老师好", "菠菜炒鸡蛋", "可以开发票吗", "上门服务几点到"):
        ctx = MessageContext(id="m", ts=0, msg_type="text", text=text)
        assert evaluate(policy, ctx).action is Action.ALLOW, text
    ctx = MessageContext(id="m", ts=0, msg_type="text", text="日结兼职，刷单返利，日赚千元")
    assert evaluate(policy, ctx).category == "ads"


def test_lexicon_lines_are_split_cleaned_and_what_is_dropped_is_said() -> None:
    data = "高压气枪|电狗专卖\n考试,答案\n妈\nQQ\n e 夜情 \n!!!\n高压气枪\n\n".encode()
    words = read_lexicon(data, "weapons")
    assert [w.word for w in words.entries] == ["高压气枪", "电狗专卖", "考试", "答案", "e夜情"]
    assert {w.category for w in words.entries} == {"weapons"}
    assert [(d.line, d.text, d.reason) for d in words.dropped] == [
        (3, "妈", "too_short"),
        (4, "QQ", "too_short"),
        (6, "!!!", "no_letters"),
        (7, "高压气枪", "duplicate"),
    ]


def test_the_real_lexicon_loads_with_every_drop_accounted_for() -> None:
    report = read_lexicon_dir(LEXICON)
    assert len(report.files) == 17
    lines = sum(
        sum(1 for line in (LEXICON / name).read_text(encoding="utf-8").splitlines() if line.strip())
        for name in report.files
    )
    dropped = sum(len(w.dropped) for w in report.files.values())
    assert len(report.entries) > 50_000
    # every non-blank line is kept (maybe as several words) or its drop is listed
    assert len(report.entries) + dropped >= lines
    reasons = {d.reason for w in report.files.values() for d in w.dropped}
    assert reasons <= {"duplicate", "too_short", "no_letters", "too_long"}
    assert "too_short" in reasons and "duplicate" in reasons
    words = {w.word for w in report.entries}
    assert len(words) == len(report.entries)
    assert "妈" not in words and not any(len(w) == 1 for w in words)
    categories = {w.category for w in report.entries}
    assert {"ads", "porn", "politics"} <= categories
    ads = report.files["广告类型.txt"]
    assert ads.entries and {w.category for w in ads.entries} == {"ads"}
