"""Sensitive-word matching: messages per second on one core with the full normalization, against
the raw automaton over the same messages in the same run; build times; recall and false
positives on the quality corpus (``tests/fixtures/moderation/``).

    python -m bench.bench_moderation [--messages 50000] [--rounds 5] [--sizes 10000,100000] [--seed 7]
                                     [--raw-lexicon]

Words are sampled at run time from the real lexicon in ``../shared/data/sensitive-lexicon/``,
loaded as the product loads a lexicon (``wordfiles.read_lexicon_dir``: ~49,000 words once single
characters, one- and two-letter Latin words and duplicates are dropped); for 100,000 words the
sample is topped up with pairs of lexicon words written together, as lexicons do (``代开发票`` +
``网址``). ``--raw-lexicon`` adds a run over the raw lines, junk included (``㈨``, ``p``: they
match ordinary text everywhere and send most messages through the checks). Messages are generated Chinese
chat lines (greetings, questions, order numbers, prices, emoji, a little English): about 5 %
carry a lexicon word, written plainly or with an evasion (noise, traditional characters,
repeats, fullwidth).

"normalizing" is ``NormalizingMatcher.find`` (translate, repeats, the automaton over normalized
text, and for texts with a match the alignment and checks). "raw" is ahocorasick-rs over the
un-normalized text with the same words and default options, no checks: the floor. Each round
times both over the messages in ten alternating slices (fresh string objects each time, as
live messages are). Rates are the median of the better half of the slices; the ratio is the
median of the per-slice ratios (each pair ran back to back, under the same load). Times are
the process's CPU time (one core: the matcher runs in one thread), so that other work on a
shared machine does not count against either.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

import ahocorasick_rs

from bench.common import ROOT
from qunyun.moderation._match_corpus import corpus_matcher, load_cases, score
from qunyun.moderation.matcher import build_matcher
from qunyun.moderation.normalize import table
from qunyun.moderation.types import WordEntry

LEXICON = ROOT.parent / "shared" / "data" / "sensitive-lexicon"
FIXTURES = ROOT / "tests" / "fixtures" / "moderation"

_OPENERS = ["", "", "", "大家好，", "群主，", "请问", "@小王 ", "哈哈，", "亲，", "老师好，", "各位早，"]
_BODIES = [
    "今天的直播几点开始",
    "这款面霜还有货吗",
    "我的订单号是{order}，什么时候发货",
    "价格是{price}元吗",
    "周末一起去爬山吧",
    "收到，马上处理",
    "谢谢分享，学到了",
    "明天下午{hour}点开会，别迟到",
    "图片已经发了，请查收",
    "宝宝最近睡得不好，有什么办法",
    "这个课程适合初学者吗",
    "快递到了，包装很好",
    "优惠券怎么领取",
    "我已经打卡了",
    "新品什么时候上架",
    "能开发票吗",
    "群里有人去过杭州吗",
    "how much is the shipping",
    "ok 没问题",
    "会员积分可以换什么",
    "手机尾号{tail}的是我",
    "活动规则在公告里",
]
_CLOSERS = ["", "", "", "？", "！", "～", "😀", "👍", "🙏", "[微笑]", "。", "哈哈哈"]
_NOISE = [" ", ".", "*", "😀", "\u200b", "-"]


def lexicon(*, raw: bool = False) -> list[WordEntry]:
    """The lexicon as a team loads it (``wordfiles.read_lexicon_dir``: single characters and
    Latin words of one or two letters dropped, duplicates dropped), or with ``raw`` its distinct
    stripped lines, junk included (㈨, p)."""
    if not raw:
        from qunyun.moderation.wordfiles import read_lexicon_dir

        return read_lexicon_dir(LEXICON).entries
    seen: dict[str, WordEntry] = {}
    for path in sorted(LEXICON.glob("*.txt")):
        for line in path.read_text(encoding="utf-8").splitlines():
            word = line.strip()
            if word and word not in seen:
                seen[word] = WordEntry(word, path.stem)
    return list(seen.values())


def sample_words(all_words: list[WordEntry], n: int, rng: random.Random) -> list[WordEntry]:
    if n <= len(all_words):
        return rng.sample(all_words, n)
    words = list(all_words)
    have = {w.word for w in words}
    while len(words) < n:
        a, b = rng.choice(all_words).word, rng.choice(all_words).word
        if a + b not in have:
            have.add(a + b)
            words.append(WordEntry(a + b, "pairs"))
    return words


def _evade(word: str, rng: random.Random) -> str:
    kind = rng.randrange(5)
    if kind == 0:
        return word
    if kind == 1:
        return rng.choice(_NOISE).join(word)
    if kind == 2:
        return "".join(c * rng.choice((1, 2)) for c in word)
    if kind == 3:
        return word.upper().translate({c: c + 0xFEE0 for c in range(0x21, 0x7F)})
    import opencc

    return str(opencc.OpenCC("s2t").convert(word))


def messages(n: int, words: list[WordEntry], rng: random.Random, hit_share: float = 0.05) -> list[str]:
    out = []
    for _ in range(n):
        body = rng.choice(_BODIES).format(
            order=rng.randrange(10**11, 10**12),
            price=f"{rng.randrange(1, 999)}.{rng.randrange(100):02d}",
            hour=rng.randrange(1, 12),
            tail=rng.randrange(1000, 10000),
        )
        if rng.random() < hit_share:
            word = _evade(rng.choice(words).word, rng)
            cut = rng.randrange(len(body) + 1)
            body = body[:cut] + word + body[cut:]
        out.append(rng.choice(_OPENERS) + body + rng.choice(_CLOSERS))
    return out


def _rate(run, texts: list[str]) -> float:  # type: ignore[no-untyped-def]
    # Fresh string objects, as live messages are: a str caches its UTF-8 form once the
    # automaton asked for it, and a second pass over the same objects would skip that work.
    texts = [(t + "\x00")[:-1] for t in texts]
    started = time.process_time()
    for text in texts:
        run(text)
    return len(texts) / (time.process_time() - started)


def measure(size: int, all_words: list[WordEntry], args: argparse.Namespace, label: str = "") -> None:
    rng = random.Random(args.seed + size)
    words = sample_words(all_words, size, rng)
    texts = messages(args.messages, words, rng)

    started = time.perf_counter()
    matcher = build_matcher(words)
    build = time.perf_counter() - started
    started = time.perf_counter()
    raw = ahocorasick_rs.AhoCorasick([w.word for w in words])
    raw_build = time.perf_counter() - started

    find, raw_find = matcher.find, raw.find_matches_as_indexes
    _rate(find, texts[:2000]), _rate(raw_find, texts[:2000])  # warm up
    rates: dict[str, list[float]] = {"normalizing": [], "raw": []}
    ratios: list[float] = []
    chunk = max(len(texts) // 10, 1)
    for _ in range(args.rounds):
        for i in range(0, len(texts), chunk):  # short alternating slices: both see the same load
            part = texts[i : i + chunk]
            rates["normalizing"].append(_rate(find, part))
            rates["raw"].append(_rate(raw_find, part))
            ratios.append(rates["normalizing"][-1] / rates["raw"][-1])
    best = {k: statistics.median(sorted(v)[len(v) // 2 :]) for k, v in rates.items()}
    with_hits = sum(1 for t in texts if find(t)) / len(texts)
    raw_hits = sum(1 for t in texts if raw_find(t)) / len(texts)
    print(
        f"{size:>7,} words{label} ({matcher.patterns:,} patterns): build {build:.2f}s (raw {raw_build:.2f}s); "
        f"messages with a hit {with_hits:.1%} (raw {raw_hits:.1%})"
    )
    print(
        f"        normalizing {best['normalizing']:>10,.0f} msgs/s   raw {best['raw']:>10,.0f} msgs/s   "
        f"ratio {statistics.median(ratios):.3f} (median of {len(ratios)} slices)   "
        f"{1e6 / best['normalizing']:.1f} µs per message"
    )


def corpus() -> None:
    cases = load_cases(FIXTURES / "corpus.jsonl")
    result = score(corpus_matcher(FIXTURES), cases)
    print(
        f"corpus: recall {result.recall:.3f} ({result.found}/{result.cases} evasive texts), "
        f"false positives {result.fp_rate:.3f} ({result.false_positives}/{result.clean} clean texts)"
    )
    for case in result.misses:
        print(f"  missed [{case.technique}] {case.text!r}")
    for case, words in result.flagged:
        print(f"  flagged {case.text!r}: {words}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--raw-lexicon", action="store_true", help="also the first size sampled from the lexicon's raw lines"
    )
    args = parser.parse_args()

    if not LEXICON.is_dir():
        raise SystemExit(f"the lexicon is not at {LEXICON}")
    started = time.perf_counter()
    table()
    print(f"normalization table: {len(table()):,} entries, built in {time.perf_counter() - started:.2f}s")
    all_words = lexicon()
    junk = lexicon(raw=True)
    print(
        f"lexicon: {len(all_words):,} words as loaded ({len(junk):,} distinct lines); "
        f"{args.messages:,} messages, {args.rounds} rounds"
    )
    corpus()
    sizes = [int(s) for s in args.sizes.split(",")]
    for size in sizes:
        measure(size, all_words, args)
    if args.raw_lexicon:
        measure(sizes[0], junk, args, " from the raw lines")


if __name__ == "__main__":
    main()


__all__ = ["Path", "lexicon", "messages", "sample_words"]
