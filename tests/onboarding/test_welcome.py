"""Welcomes through the real pipeline: a join on the simulated platform is ingested live, the
follow-up leaves a notice, the group's greet job sends one message naming the new members."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from tests.onboarding.harness import RULES_URL, organisation


def test_a_join_is_welcomed_with_its_variables_and_an_at_mention(db: sessionmaker[Session]) -> None:
    with organisation(db) as org:
        org.join("m1", name="老王")
        org.step()
        [message] = org.bot_messages()
        assert message.text == f"@m1 欢迎 老王 加入华东1群！我是群主王群主，群规：{RULES_URL}"
        [action] = org.actions()
        assert (action.action, action.state, action.payload["mentions"]) == ("welcome_members", "sent", ["m1"])
