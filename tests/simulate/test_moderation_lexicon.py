"""The real lexicon (``../shared/data/sensitive-lexicon/``, loaded at test time through
``moderation.wordfiles``) as a policy over every ordinary text of the simulator: what it flags
is a known, explained set of words (docs/moderation.md, "Demo"), nothing else. A lexicon
downloaded as it is flags everyday cycling chat; a team loads the category lists it wants and
an allow list, which is why the product's default policy is its own small list."""

from __future__ import annotations

import random
from collections import Counter

from qunyun.moderation.policy import policy_from_dict
from qunyun.moderation.rules import evaluate
from qunyun.moderation.types import MessageContext
from qunyun.moderation.wordfiles import read_lexicon_dir
from qunyun.simulate import personas, texts
from tests.shared_data import LEXICON

# What the whole lexicon flags in the simulator's ordinary texts, and why (every entry is a
# word the lexicon lists; the loader keeps it because it is two characters or more). Spellings
# the matcher folds to the same text (武漢 and 武汉, 六-四 and 六四) are listed each: a hit reports
# one of them.
KNOWN: dict[str, str] = {
    # place names: cities the members live in, listed by the mixed, COVID-19 and GFW lists
    "杭州": "city",
    "深圳": "city",
    "北京": "city",
    "武汉": "city",
    "乌鲁木齐": "city",
    # everyday words in the big mixed lists (活動 is 活动 in traditional script: matched through t2s)
    "路线": "everyday word",
    "没有": "everyday word",
    "官方": "everyday word",
    "老大": "everyday word",
    "第二": "everyday word",
    "第四": "everyday word",
    "活動": "everyday word",
    "武漢": "city",
    "到货": "everyday word (the ads list)",
    "安全": "everyday word (the GFW list)",
    # dates written as numbers; the matcher reads number styles and drops the noise between
    # characters, so "骑了64公里" holds 六四 and "89公里" 八九
    "6.4": "date as a number",
    "6四": "date as a number",
    "六4": "date as a number",
    "六四": "date as a number",
    "六.四": "date as a number",
    "六四*": "date as a number",
    "六。四": "date as a number",
    "六?四": "date as a number",
    "六-四": "date as a number",
    "六●四": "date as a number",
    "八九": "date as a number",
    "八玖": "date as a number",
    "捌9": "date as a number",
    "7?5": "date as a number",
    "40=": "a number and a symbol",
    # people's names in the political and mixed lists, inside members' nicknames (李鹏鹏, 曾伟健)
    "李鹏": "personal name",
    "李鹏*": "personal name",
    "李鵬": "personal name",
    "曾伟": "personal name",
    # pieces of every URL, in the mixed lists
    ".com": "URL piece",
    "www": "URL piece",
    "WWW.": "URL piece",
}


def test_the_real_lexicon_flags_only_the_known_words_in_ordinary_texts() -> None:
    report = read_lexicon_dir(LEXICON)
    assert len(report.entries) > 40_000
    listed = {w.word for w in report.entries}
    assert set(KNOWN) <= listed
    policy = policy_from_dict({"words": [{"word": w.word, "category": w.category} for w in report.entries]}).compile()
    rng = random.Random(7)
    names = tuple(dict.fromkeys(personas.draw_persona(rng).display_name for _ in range(400)))
    ordinary = texts.ordinary_texts(names)
    hits: Counter[str] = Counter()
    flagged = 0
    for text in ordinary:
        decision = evaluate(policy, MessageContext(id="t", ts=0, msg_type="text", text=text))
        flagged += bool(decision.matches)
        hits.update(m.word for m in decision.matches)
    unexplained = sorted(set(hits) - set(KNOWN))
    assert unexplained == [], unexplained
    assert {"北京", "路线", "六四", "李鹏", "到货"} <= set(hits)
    # Without the known words the lexicon lets every ordinary text through.
    rest = [{"word": w.word, "category": w.category} for w in report.entries if w.word not in KNOWN]
    quiet = policy_from_dict({"words": rest}).compile()
    assert not any(evaluate(quiet, MessageContext(id="t", ts=0, msg_type="text", text=t)).matches for t in ordinary)
    assert 0 < flagged < len(ordinary)
