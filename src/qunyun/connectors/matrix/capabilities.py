"""Matrix rooms, acted on by a bot account (or an application service) with a high enough power
level. The connector is :class:`qunyun.connectors.matrix.client.MatrixConnector`; what it does
is in docs/connectors/matrix.md.
"""

from qunyun.connectors.base import Capability, PlatformProfile

PROFILE = PlatformProfile(
    platform="matrix",
    title="Matrix",
    capabilities=frozenset(
        {
            Capability.SEND_GROUP_MESSAGE,
            Capability.DELETE_MESSAGE,
            Capability.MUTE,
            Capability.KICK,
            Capability.CREATE_GROUP,
            Capability.CREATE_INVITE_LINK,
            Capability.INVITATION_ATTRIBUTION,
            Capability.READ_MESSAGES,
            Capability.MEMBERSHIP_EVENTS,
            Capability.MENTION,
            Capability.DIRECT_MESSAGE,
            Capability.SET_DESCRIPTION,
        }
    ),
    notes={
        Capability.DELETE_MESSAGE: "Redaction of the event.",
        Capability.MUTE: (
            "Power levels: the member's level below events_default. No timed mute: a mute with a "
            "duration goes to a person."
        ),
        Capability.CREATE_GROUP: "createRoom (joinable by its links' aliases).",
        Capability.CREATE_INVITE_LINK: "A matrix.to link to a room alias: no member limit, no expiry.",
        Capability.INVITE_LINK_MEMBER_LIMIT: "Room links have no member limit.",
        Capability.INVITE_LINK_EXPIRY: "Room links do not expire (revoking removes the alias).",
        Capability.INVITE_LINK_ATTRIBUTION: (
            "A join does not say which alias or link was used: a live code's page offers an invitation instead."
        ),
        Capability.INVITATION_ATTRIBUTION: (
            "The visitor enters their Matrix ID on the live code's page; the bot invites them and their join "
            "of that room within 7 days is attributed to the code."
        ),
        Capability.READ_MESSAGES: "Not in end-to-end encrypted rooms: the bot holds no keys.",
        Capability.WELCOME_ON_JOIN: "No platform welcome: qunyun posts its own welcome message on a join.",
        Capability.TAGS: "Matrix has no member tags; qunyun keeps tags itself.",
        Capability.MEMBER_PROFILES: "Only a display name and avatar (/profile): no persona fields.",
        Capability.INTERCEPT_RULES: "No server-side word filter; qunyun's moderation redacts matching messages.",
        Capability.MENTION: "m.mentions user_ids with a matrix.to pill in the formatted body.",
        Capability.DIRECT_MESSAGE: "A direct room (createRoom is_direct, the member invited).",
        Capability.SET_DESCRIPTION: "The room's topic (m.room.topic).",
        Capability.JOIN_REQUESTS: "Knocking rooms are not used: joins through a link need no approval.",
    },
)
