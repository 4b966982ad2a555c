"""Telegram groups and supergroups through the Bot API (the bot is an admin; see
docs/connectors/telegram.md). The connector is ``qunyun.connectors.telegram.client``. Facts are
from the Bot API:
sendMessage, deleteMessage, restrictChatMember, banChatMember, createChatInviteLink
(member_limit 1-99999, expire_date, name ≤ 32 characters), chat_member updates carrying the
invite link used.
"""

from qunyun.connectors.base import Capability, PlatformProfile

PROFILE = PlatformProfile(
    platform="telegram",
    title="Telegram",
    capabilities=frozenset(
        {
            Capability.SEND_GROUP_MESSAGE,
            Capability.DELETE_MESSAGE,
            Capability.MUTE,
            Capability.KICK,
            Capability.CREATE_INVITE_LINK,
            Capability.INVITE_LINK_MEMBER_LIMIT,
            Capability.INVITE_LINK_EXPIRY,
            Capability.INVITE_LINK_ATTRIBUTION,
            Capability.READ_MESSAGES,
            Capability.MEMBERSHIP_EVENTS,
            Capability.WELCOME_ON_JOIN,
            Capability.MENTION,
            Capability.JOIN_REQUESTS,
            Capability.SET_DESCRIPTION,
        }
    ),
    notes={
        Capability.MUTE: "restrictChatMember (can_send_messages false) until a date.",
        Capability.KICK: "banChatMember (then unbanChatMember to allow a return).",
        Capability.INVITE_LINK_MEMBER_LIMIT: (
            "createChatInviteLink member_limit: members who joined through the link at the same time, 1-99999."
        ),
        Capability.INVITE_LINK_EXPIRY: "createChatInviteLink expire_date.",
        Capability.READ_MESSAGES: "The bot must be an admin or have privacy mode off.",
        Capability.WELCOME_ON_JOIN: "Our bot posts the configured welcome when a chat_member update reports a join.",
        Capability.CREATE_GROUP: "Bots cannot create groups; a person creates it and adds the bot as admin.",
        Capability.TAGS: "Telegram has no member tags; qunyun keeps tags itself.",
        Capability.MEMBER_PROFILES: (
            "Only first/last name and username (in every update already): no gender, age or region."
        ),
        Capability.INTERCEPT_RULES: "No server-side word filter; qunyun's moderation deletes matching messages.",
        Capability.MENTION: "An HTML tg://user?id= link per member (no username needed).",
        Capability.JOIN_REQUESTS: "approveChatJoinRequest / declineChatJoinRequest (links that create join requests).",
        Capability.SET_DESCRIPTION: "setChatDescription (at most 255 characters).",
        Capability.DIRECT_MESSAGE: (
            "A bot may message a member privately only after the member has started a chat with it."
        ),
    },
    limits={
        "group_capacity": 200_000,
        "invite_link_member_limit_max": 99_999,
        "invite_link_name_max": 32,
        "messages_per_minute_per_group": 20,
        "messages_per_second": 30,
    },
)
