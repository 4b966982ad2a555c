"""``qunyun moderation check|intercept``: the JSON decision lines of the contract, flood over
standard input, and every bad input refused with its line and exit 2 (nothing printed). The
command line speaks Chinese by default (QUNYUN_DEFAULT_LANGUAGE)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from qunyun.cli import app
from tests.shared_data import LEXICON

runner = CliRunner()
POLICIES = Path(__file__).parent.parent / "fixtures" / "moderation" / "policies"


def event(i: int, text: str | None, *, member: str = "u1", second: int = 0, **kw: Any) -> str:
    obj: dict[str, Any] = {
        "id": f"m{i}",
        "ts": f"2026-12-01T10:{second // 60:02d}:{second % 60:02d}+08:00",
        "kind": "message.posted",
        "group": kw.pop("group", "g1"),
        "member": member,
        "msg_type": kw.pop("msg_type", "text"),
    }
    if text is not None:
        obj["text"] = text
    obj.update(kw)
    return json.dumps(obj, ensure_ascii=False)


def check(args: list[str], stdin: str | None = None) -> Any:
    return runner.invoke(app, ["moderation", "check", *args], input=stdin)


def lines(result: Any) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.fixture
def words_file(tmp_path: Path) -> Path:
    path = tmp_path / "words.txt"
    path.write_text("# ours\n加微信\tads\n博彩\t赌博\n", encoding="utf-8")
    return path


def test_check_one_text_with_a_word_file(words_file: Path) -> None:
    out = lines(check(["--words", str(words_file), "--text", "周末博彩，加微信"]))
    assert out == [
        {
            "id": "text",
            "action": "delete",
            "rule": "words",
            "category": "gambling",
            "matches": [{"word": "博彩", "start": 2, "end": 4}, {"word": "加微信", "start": 5, "end": 8}],
        }
    ]
    clean = lines(check(["--words", str(words_file), "--text", "周末骑行"]))
    assert clean == [{"id": "text", "action": "allow", "rule": None, "category": None, "matches": []}]


def test_check_stdin_gives_one_decision_per_message(words_file: Path) -> None:
    stdin = "\n".join([event(1, "大家好"), "", event(2, "来博彩"), event(3, None, msg_type="image")]) + "\n"
    out = lines(check(["--words", str(words_file)], stdin))
    assert [(d["id"], d["action"]) for d in out] == [("m1", "allow"), ("m2", "delete"), ("m3", "allow")]


def test_flood_in_a_file_is_found_per_member_and_group() -> None:
    policy = POLICIES / "community.yaml"
    spam = [event(i, f"第{i}条", second=i) for i in range(5)]
    others = [event(10 + i, f"第{i}条", member="u2", second=i) for i in range(4)]
    elsewhere = [event(20 + i, f"第{i}条", group="g2", second=i) for i in range(4)]
    stdin = "\n".join(others[:2] + spam[:3] + elsewhere + others[2:] + spam[3:]) + "\n"
    out = {d["id"]: d for d in lines(check(["--policy", str(policy)], stdin))}
    assert (out["m4"]["action"], out["m4"]["rule"]) == ("mute", "刷屏")
    assert out["m3"]["action"] == "allow"
    assert all(out[f"m{i}"]["action"] == "allow" for i in (10, 11, 12, 13, 20, 21, 22, 23))


def test_joins_start_the_new_member_clock() -> None:
    policy = POLICIES / "community.yaml"
    joined = json.dumps(
        {"id": "j1", "ts": "2026-12-01T09:00:00+08:00", "kind": "member.joined", "group": "g1", "member": "u1",
         "member_name": "博彩代理"}, ensure_ascii=False
    )  # fmt: skip
    stdin = "\n".join([joined, event(1, "看 qiji.example.com"), event(2, "看 qiji.example.com", member="u9")])
    out = lines(check(["--policy", str(policy)], stdin))
    assert [(d["id"], d["action"], d["rule"]) for d in out] == [
        ("j1", "kick", "群名片"),
        ("m1", "delete", "新人"),
        ("m2", "allow", None),
    ]


def test_a_bad_line_refuses_the_input_naming_it(words_file: Path) -> None:
    good = event(1, "大家好")
    for bad, message in (
        ("{not json", "第 2 行：不是有效的 JSON"),
        (json.dumps({"id": "x", "ts": "2026-12-01T10:00:00", "kind": "message.posted"}), "第 2 行：字段 ts："),
        (event(2, "hi", msg_type="sticker"), "第 2 行：字段 msg_type："),
        (
            json.dumps(
                {"id": "x", "ts": "2026-12-01T10:00:00+08:00", "kind": "member.left", "group": "g", "member": "u"}
            ),
            "第 2 行：不审核 member.left 事件",
        ),
    ):
        result = check(["--words", str(words_file)], f"{good}\n{bad}\n{good}\n")
        assert result.exit_code == 2, result.output
        assert result.stdout == ""
        assert message in result.stderr, result.stderr


def test_bad_word_files_and_policies_are_one_line_errors(tmp_path: Path) -> None:
    missing = check(["--words", str(tmp_path / "nope.txt"), "--text", "x"])
    assert missing.exit_code == 2 and "nope.txt" in missing.stderr
    bad_words = tmp_path / "bad.txt"
    bad_words.write_bytes("好\n\tads\n".encode())
    refused = check(["--words", str(bad_words), "--text", "x"])
    assert refused.exit_code == 2 and "bad.txt：第 2 行：只有分类，没有词" in refused.stderr
    bad_policy = tmp_path / "bad.yaml"
    bad_policy.write_text("rules:\n  - kind: flood\n    count: 5\n    seconds: ten\n", encoding="utf-8")
    refused = check(["--policy", str(bad_policy), "--text", "x"])
    assert refused.exit_code == 2 and "rules[0].seconds：应为 1 到 86400 之间的整数" in refused.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("words: [a, b\nrules: x\n", encoding="utf-8")
    refused = check(["--policy", str(broken), "--text", "x"])
    assert refused.exit_code == 2 and "行不是有效的 YAML" in refused.stderr
    both = check(["--policy", str(broken), "--words", str(bad_words), "--text", "x"])
    assert both.exit_code == 2 and "请给出 --policy FILE 或 --words FILE" in both.stderr
    assert check(["--text", "x"]).exit_code == 2


def test_a_policy_names_word_files_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "ads.txt").write_text("刷单返利\n", encoding="utf-8")
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        f"words: [博彩]\nword_files:\n  - {{path: lists/ads.txt, category: 广告}}\n"
        f"  - {{path: '{LEXICON / '色情类型.txt'}', category: porn, format: lexicon}}\n"
        "rules: [{kind: words, action: delete}]\n",
        encoding="utf-8",
    )
    out = lines(check(["--policy", str(policy), "--text", "刷单返利"]))
    assert (out[0]["action"], out[0]["category"]) == ("delete", "ads")
    policy.write_text("word_files: [{path: lists/ads.txt, colour: red}]\n", encoding="utf-8")
    refused = check(["--policy", str(policy), "--text", "x"])
    assert refused.exit_code == 2 and "word_files[0].colour" in refused.stderr


def test_intercept_prints_the_wecom_rules(tmp_path: Path) -> None:
    path = tmp_path / "words.txt"
    path.write_text("".join(f"词{i}\t广告\n" for i in range(301)) + "长" * 40 + "\tporn\n", encoding="utf-8")
    result = runner.invoke(app, ["moderation", "intercept", "--words", str(path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert [(r["name"], len(r["words"])) for r in out["rules"]] == [("qunyun-广告-1", 300), ("qunyun-广告-2", 1)]
    assert out["overflow"] == [{"word": "长" * 40, "category": "porn", "reason": "too_long"}]


def test_an_excel_word_list(tmp_path: Path) -> None:
    from qunyun.moderation.types import WordEntry
    from qunyun.moderation.wordfiles import write_excel

    path = tmp_path / "词表.xlsx"
    path.write_bytes(write_excel([WordEntry("刷单返利", "ads"), WordEntry("约炮", "porn")]))
    out = lines(check(["--words", str(path), "--text", "刷单返利了解一下"]))
    assert (out[0]["action"], out[0]["category"]) == ("delete", "ads")
    broken = tmp_path / "broken.xlsx"
    broken.write_bytes(b"PK\x03\x04 not really")
    refused = check(["--words", str(broken), "--text", "x"])
    assert refused.exit_code == 2 and "broken.xlsx：不是可读取的 Excel 工作簿" in refused.stderr


def test_the_lexicon_example_policy_reads_the_shared_lexicon(tmp_path: Path) -> None:
    # The example names the lexicon beside the checkout; a checkout elsewhere reads it where it is.
    example = (POLICIES / "lexicon.yaml").read_text(encoding="utf-8")
    policy = tmp_path / "lexicon.yaml"
    policy.write_text(example.replace("../../../../../shared/data/sensitive-lexicon", str(LEXICON)), encoding="utf-8")
    stdin = "\n".join(
        [
            event(1, "出售高压气枪"),
            event(2, "刷单返利了解一下", member="u2"),
            event(3, "今晚骑行 8 点集合，管理员测试一下群公告", member="u3"),
            event(4, "我女儿也想参加，陆老师带队吗？", member="u4"),
        ]
    )
    out = lines(check(["--policy", str(policy)], stdin))
    assert [(d["action"], d["rule"], d["category"]) for d in out] == [
        ("delete", "敏感词", "weapons"),
        ("warn", "广告", "ads"),
        ("allow", None, None),
        ("allow", None, None),
    ]
    assert out[0]["matches"][0] == {"word": "高压气枪", "start": 2, "end": 6}
