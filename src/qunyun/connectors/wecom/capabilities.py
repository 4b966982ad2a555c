"""WeCom customer groups (客户群): what the platform lets an application do.

The connector (``qunyun.connectors.wecom.connector``) implements every capability declared here.
This profile is what the dispatcher routes on: actions outside it become staff tasks, and group
sends wait for the owner's confirmation. Facts are from the WeCom
server API (客户联系): 客户群 list/get, 「加入群聊」 join ways (groupchat/add_join_way), 企业群发
(add_msg_template), 入群欢迎语素材 (group_welcome_template), 企业客户标签 (mark_tag), 敏感词
(add_intercept_rule), and the change_external_chat callbacks.
"""

from qunyun.connectors.base import Capability, PlatformProfile

PROFILE = PlatformProfile(
    platform="wecom",
    title="WeCom (企业微信)",
    capabilities=frozenset(
        {
            Capability.SEND_REQUIRES_CONFIRMATION,
            Capability.CREATE_INVITE_LINK,
            Capability.INVITE_LINK_ATTRIBUTION,
            Capability.MEMBERSHIP_EVENTS,
            Capability.WELCOME_ON_JOIN,
            Capability.TAGS,
            Capability.INTERCEPT_RULES,
            Capability.MEMBER_PROFILES,
        }
    ),
    notes={
        Capability.SEND_GROUP_MESSAGE: (
            "No API posts into a customer group; a group mass send (企业群发, add_msg_template) is "
            "delivered only after the group owner confirms it in the WeCom client."
        ),
        Capability.SEND_REQUIRES_CONFIRMATION: (
            "企业群发 to customer groups: the owner presses send; each group receives at most as "
            "many mass sends a month as the month has days; at most 3 reminders per send per 24 h."
        ),
        Capability.DELETE_MESSAGE: "No API recalls or deletes a customer's message in a customer group.",
        Capability.MUTE: "Customer groups have no per-member mute API.",
        Capability.KICK: "No API removes a member from a customer group: the owner does it in the client.",
        Capability.CREATE_GROUP: (
            "No server API creates a customer group; the owner creates it in the client (a join way "
            "with auto_create_room opens the next group when one is full)."
        ),
        Capability.CREATE_INVITE_LINK: (
            "「加入群聊」 join way: a QR code / mini-program button for up to 5 groups, with a state "
            "parameter for attribution; no member limit and no expiry of its own."
        ),
        Capability.READ_MESSAGES: "Only with the paid chat archive (会话内容存档), which qunyun does not assume.",
        Capability.WELCOME_ON_JOIN: "入群欢迎语素材 (group welcome templates), sent by WeCom on join.",
        Capability.TAGS: "企业客户标签 on external contacts (mark_tag).",
        Capability.INTERCEPT_RULES: "敏感词拦截规则 (add_intercept_rule): WeCom blocks matching messages.",
        Capability.MEMBER_PROFILES: (
            "externalcontact/get: name and gender of an external contact; age, occupation, region and "
            "interests come from surveys and tags, not from WeCom."
        ),
        Capability.MENTION: "A group mass send cannot @-mention a member; the text names them instead.",
        Capability.DIRECT_MESSAGE: (
            "No API messages a customer directly: the staff member who added them sends it in a one-to-one chat."
        ),
    },
    limits={
        "group_capacity": 500,
        "group_qr_scan_limit": 200,
        "join_way_groups": 5,
        "mass_send_reminders_per_24h": 3,
    },
)
