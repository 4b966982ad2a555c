"""Word lists in and out of files: text (one word a line, optional ``<TAB>category`` and
``<TAB>pinyin``), Excel (columns 词/word, 分类/category, 拼音/pinyin) and the loose lexicon files
people download (``/work/shared/data/sensitive-lexicon/``).

The text and Excel readers are strict, for lists a team writes: a bad line refuses the file
with an ``InvalidInput`` naming the line (or the row as the user sees it, the header being row
1, and the column by its header). The lexicon reader is lenient, for lists found elsewhere: it
drops what cannot be a useful entry and says what it dropped and why (:class:`Dropped`), never
silently. Pure: bytes in, entries out.
"""

from __future__ import annotations

import io
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from qunyun.errors import InvalidInput
from qunyun.locale import Msg
from qunyun.moderation.policy import MAX_CATEGORY, MAX_WORD, category_id
from qunyun.moderation.types import WordEntry

MAX_ENTRIES = 200_000
_TRUE = frozenset({"pinyin", "拼音", "1", "true", "yes", "y", "是", "✓"})
_FALSE = frozenset({"", "0", "false", "no", "n", "否"})
_WORD_HEADERS = frozenset({"词", "word", "敏感词", "词语", "关键词", "keyword"})
_CATEGORY_HEADERS = frozenset({"分类", "category", "类别", "类型"})
_PINYIN_HEADERS = frozenset({"拼音", "pinyin"})


@dataclass(frozen=True, slots=True)
class Dropped:
    """A line left out: where (line or row number), what it said, and why (``duplicate``,
    ``too_short``, ``no_letters``, ``too_long``)."""

    line: int
    text: str
    reason: str


@dataclass
class WordList:
    entries: list[WordEntry] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)

    def summary(self) -> dict[str, int]:
        """How many entries were kept and, per reason, dropped."""
        out = {"kept": len(self.entries)}
        for d in self.dropped:
            out[d.reason] = out.get(d.reason, 0) + 1
        return out


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data.removeprefix("\ufeff")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InvalidInput(Msg("err.moderation.words_encoding", line=line), field="file", line=line) from None


def _has_control(text: str) -> bool:
    return any(unicodedata.category(ch) == "Cc" for ch in text)


def _flag(value: str) -> bool | None:
    folded = value.strip().casefold()
    if folded in _TRUE:
        return True
    if folded in _FALSE:
        return False
    return None


def _line_error(line: int, reason: Msg) -> InvalidInput:
    return InvalidInput(Msg("err.moderation.words_line", line=line, reason=reason), field="file", line=line)


def read_text(data: bytes | str, default_category: str = "custom") -> WordList:
    """A team's word list: ``word[<TAB>category[<TAB>pinyin]]`` a line, ``#`` comments and blank
    lines ignored. A word listed twice keeps its first line; the later ones are in ``dropped``."""
    text = _decode(data)
    out = WordList()
    seen: set[str] = set()
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip(" \r\n\u3000")
        if not line or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) > 3:
            raise _line_error(number, Msg("err.moderation.words_fields"))
        word = parts[0]
        if not word:
            raise _line_error(number, Msg("err.moderation.words_no_word"))
        if len(word) > MAX_WORD:
            raise _line_error(number, Msg("err.moderation.too_long", limit=MAX_WORD))
        if _has_control(word):
            raise _line_error(number, Msg("err.moderation.control"))
        category = default_category
        if len(parts) > 1:
            try:
                category = category_id(parts[1])
            except ValueError:
                raise _line_error(number, Msg("err.moderation.words_no_category")) from None
            if len(category) > MAX_CATEGORY:
                raise _line_error(number, Msg("err.moderation.too_long", limit=MAX_CATEGORY))
        pinyin = False
        if len(parts) > 2:
            flag = _flag(parts[2])
            if flag is None:
                raise _line_error(number, Msg("err.moderation.words_pinyin", value=parts[2]))
            pinyin = flag
        if word in seen:
            out.dropped.append(Dropped(number, word, "duplicate"))
            continue
        seen.add(word)
        out.entries.append(WordEntry(word, category, pinyin))
        if len(out.entries) > MAX_ENTRIES:
            raise InvalidInput(Msg("err.moderation.words_too_many", limit=MAX_ENTRIES), field="file")
    return out


def write_text(entries: Iterable[WordEntry]) -> str:
    """The text form :func:`read_text` reads back: ``word<TAB>category[<TAB>pinyin]``."""
    lines = []
    for e in entries:
        lines.append(f"{e.word}\t{e.category}\tpinyin" if e.pinyin else f"{e.word}\t{e.category}")
    return "".join(line + "\n" for line in lines)


# --- Excel ---------------------------------------------------------------------------------


def read_excel(data: bytes, default_category: str = "custom") -> WordList:
    """A word list in the first sheet of an .xlsx: a header row naming the columns (词/word,
    分类/category, 拼音/pinyin; only the word column is required), then one word a row."""
    from openpyxl import load_workbook

    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception:
        raise InvalidInput(Msg("err.moderation.excel_unreadable"), field="file") from None
    try:
        sheet = book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            raise InvalidInput(Msg("err.moderation.excel_empty"), field="file")
        names = ["" if h is None else str(h).strip() for h in header]
        columns: dict[str, int] = {}
        for index, name in enumerate(names):
            folded = name.casefold()
            for key, headers in (("word", _WORD_HEADERS), ("category", _CATEGORY_HEADERS), ("pinyin", _PINYIN_HEADERS)):
                if folded in headers and key not in columns:
                    columns[key] = index
        if "word" not in columns:
            raise InvalidInput(Msg("err.moderation.excel_no_word_column"), field="file", row=1)
        out = WordList()
        seen: set[str] = set()
        for number, row in enumerate(rows, start=2):
            cells = ["" if c is None else str(c).strip() for c in row]

            def cell(key: str, cells: list[str] = cells) -> str:
                index = columns.get(key)
                return cells[index] if index is not None and index < len(cells) else ""

            if not any(cells):
                continue

            def bad(key: str, reason: Msg, number: int = number) -> InvalidInput:
                column = names[columns[key]]
                return InvalidInput(
                    Msg("err.moderation.excel_cell", row=number, column=column, reason=reason),
                    field="file",
                    row=number,
                    column=column,
                )

            word = cell("word")
            if not word:
                raise bad("word", Msg("err.moderation.empty"))
            if len(word) > MAX_WORD:
                raise bad("word", Msg("err.moderation.too_long", limit=MAX_WORD))
            if _has_control(word):
                raise bad("word", Msg("err.moderation.control"))
            category = default_category
            if cell("category"):
                category = category_id(cell("category"))
                if len(category) > MAX_CATEGORY:
                    raise bad("category", Msg("err.moderation.too_long", limit=MAX_CATEGORY))
            pinyin = False
            if cell("pinyin"):
                flag = _flag(cell("pinyin"))
                if flag is None:
                    raise bad("pinyin", Msg("err.moderation.words_pinyin", value=cell("pinyin")))
                pinyin = flag
            if word in seen:
                out.dropped.append(Dropped(number, word, "duplicate"))
                continue
            seen.add(word)
            out.entries.append(WordEntry(word, category, pinyin))
            if len(out.entries) > MAX_ENTRIES:
                raise InvalidInput(Msg("err.moderation.words_too_many", limit=MAX_ENTRIES), field="file")
        return out
    finally:
        book.close()


def write_excel(entries: Iterable[WordEntry]) -> bytes:
    """An .xlsx :func:`read_excel` reads back: 词, 分类, 拼音 (是 or empty)."""
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "敏感词"
    sheet.append(["词", "分类", "拼音"])
    for e in entries:
        sheet.append([e.word, e.category, "是" if e.pinyin else ""])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


# --- downloaded lexicons ---------------------------------------------------------------------

MIXED = "mixed"
# The category a lexicon file's name stands for (the file names of konsheng/Sensitive-lexicon).
LEXICON_CATEGORIES = {
    "广告类型": "ads",
    "非法网址": "ads",
    "色情类型": "porn",
    "色情词库": "porn",
    "政治类型": "politics",
    "反动词库": "politics",
    "新思想启蒙": "politics",
    "贪腐词库": "politics",
    "GFW补充词库": "politics",
    "暴恐词库": "violence",
    "涉枪涉爆": "weapons",
    "民生词库": "livelihood",
    "COVID-19词库": "covid",
    # large lists of everything: read last, so that a word also in a list of its own keeps that
    # list's category
    "零时-Tencent": MIXED,
    "网易前端过滤敏感词库": MIXED,
    "补充词库": MIXED,
    "其他词库": MIXED,
}
# Lines that list several words: 高压气枪|电狗专卖, 考试,答案.
_LIST_SEPARATORS = ("|", ",", "，", "、")


def _lexicon_category(path: Path) -> str:
    stem = path.stem
    if stem in LEXICON_CATEGORIES:
        return LEXICON_CATEGORIES[stem]
    for name, category in LEXICON_CATEGORIES.items():
        if name in stem:
            return category
    return category_id(stem.removesuffix("词库")[:MAX_CATEGORY] or "custom")


def read_lexicon(data: bytes | str, category: str, seen: set[str] | None = None, source: str = "") -> WordList:
    """A downloaded list, leniently: a line with ``|`` or commas is several words; spaces inside
    a word are removed (the matcher ignores them in messages anyway); a single character or a
    Latin word of two letters or fewer (妈, qq) is dropped as too short, since it would flag
    ordinary chat; so are entries with no letter or digit, over-long ones and duplicates (also
    across files, through ``seen``)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise InvalidInput(
                Msg("err.moderation.lexicon_encoding", file=source or "-", line=line), field="file", line=line
            ) from None
    else:
        text = data
    seen = set() if seen is None else seen
    out = WordList()
    for number, raw in enumerate(text.splitlines(), start=1):
        pieces = [raw]
        for sep in _LIST_SEPARATORS:
            pieces = [p for piece in pieces for p in piece.split(sep)]
        for piece in pieces:
            word = "".join(piece.split())
            if not word:
                continue
            if len(word) > MAX_WORD:
                out.dropped.append(Dropped(number, word, "too_long"))
            elif not any(ch.isalnum() for ch in word) or _has_control(word):
                out.dropped.append(Dropped(number, word, "no_letters"))
            elif len(word) == 1 or (word.isascii() and len(word) <= 2):
                out.dropped.append(Dropped(number, word, "too_short"))
            elif word.casefold() in seen:
                out.dropped.append(Dropped(number, word, "duplicate"))
            else:
                seen.add(word.casefold())
                out.entries.append(WordEntry(word, category))
    return out


@dataclass
class LexiconReport:
    """Entries from several files, and per file what was kept and dropped."""

    entries: list[WordEntry] = field(default_factory=list)
    files: dict[str, WordList] = field(default_factory=dict)


def read_lexicon_dir(directory: Path, categories: dict[str, str] | None = None) -> LexiconReport:
    """Every ``*.txt`` of a lexicon folder, the category from the file's name
    (``LEXICON_CATEGORIES``, or ``categories`` by file stem); files by name, the mixed lists
    last; a word in several files is kept from the first and dropped as a duplicate after."""
    report = LexiconReport()
    seen: set[str] = set()
    chosen = {path: (categories or {}).get(path.stem) or _lexicon_category(path) for path in directory.glob("*.txt")}
    for path in sorted(chosen, key=lambda p: (chosen[p] == MIXED, p.name)):
        category = chosen[path]
        words = read_lexicon(path.read_bytes(), category, seen, source=path.name)
        report.files[path.name] = words
        report.entries += words.entries
    return report


def default_words() -> list[WordEntry]:
    """The small list qunyun ships (``default_words.txt``): ads, gambling, porn and fraud basics."""
    from importlib.resources import files

    return read_text(files("qunyun.moderation").joinpath("default_words.txt").read_bytes()).entries
