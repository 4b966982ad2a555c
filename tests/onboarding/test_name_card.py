"""Name-card reminders: after the playbook's delay, one message per group naming the new
members whose name does not follow the format yet; those whose name does are left alone."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests.onboarding.harness import organisation

REMINDER = "{nickname} 你好，欢迎加入{group_name}！请把群名片改成「城市-昵称」的格式，方便大家认识你。"


def test_a_reminder_after_the_delay_names_only_those_whose_name_is_not_in_the_format(
    db: sessionmaker[Session],
) -> None:
    with organisation(db, welcome_text="", name_card_format="城市-昵称", name_card_delay_minutes=10) as org:
        org.join("m1", name="上海-老王")  # already follows the format
        org.join("m2", name="小李")
        org.join("m3")  # the platform reports no name for m3: remind
        org.step()
        org.advance(9 * 60)
        org.run_jobs()
        assert org.bot_messages() == []  # not yet
        org.advance(60)
        org.run_jobs()
        [reminder] = org.bot_messages()
        assert reminder.text == "@m2 @m3 " + REMINDER.format(nickname="小李、新朋友", group_name="华东1群")
        [action] = org.actions()
        assert (action.action, action.payload["mentions"]) == ("remind_name_card", ["m2", "m3"])
        assert sorted((n.member_id, n.status, n.reason) for n in org.notices())[0][1:] == ("skipped", "named")


def test_a_member_who_renames_before_the_reminder_is_not_reminded(db: sessionmaker[Session]) -> None:
    with organisation(db, welcome_text="", name_card_format="城市 昵称", name_card_delay_minutes=5) as org:
        org.join("m1", name="小李")
        org.join("m2", name="老王")
        org.step()
        # m1 sets a name card in the format; the platform reports it with their next message.
        org.sim.sim.state.members["m1"].display_name = "北京 小李"
        org.advance(60)
        org.sim.sim.post("m1", "G1", "大家好")
        org.step()
        org.advance(4 * 60)
        org.run_jobs()
        [reminder] = org.bot_messages()
        assert reminder.text.startswith("@m2 老王 你好")


def test_the_playbooks_reminder_text_and_the_welcome_are_separate_messages(db: sessionmaker[Session]) -> None:
    with organisation(
        db,
        welcome_text="欢迎 {nickname}！",
        name_card_format="城市-昵称-车型",
        name_card_delay_minutes=0,
        name_card_text="{nickname}，群名片请改成：{name_card_format}，群规见 {rules_url}",
    ) as org:
        org.join("m1", name="阿强")
        org.step()
        texts = [m.text for m in org.bot_messages()]
        assert texts == ["@m1 欢迎 阿强！", "@m1 阿强，群名片请改成：城市-昵称-车型，群规见 https://example.com/rules"]
