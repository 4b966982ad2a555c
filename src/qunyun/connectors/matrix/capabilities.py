"""Matrix rooms, acted on by a bot account with sufficient power level. DECLARATION ONLY.

No Matrix client exists yet; this is what the dispatcher routes on. Facts are from the Matrix
client-server API: createRoom, m.room.message, redactions, kick, power levels (events_default /
per-user levels) as mute, matrix.to links to a room alias (no member limit, no expiry).
"""

from qunyun.connectors.base import Capability, PlatformProfile

PROFILE = PlatformProfile(
    platform="matrix",
    title="Matrix",
    declaration_only=True,
    capabilities=frozenset(
        {
            Capability.SEND_GROUP_MESSAGE,
            Capability.DELETE_MESSAGE,
            Capability.MUTE,
            Capability.KICK,
            Capability.CREATE_GROUP,
            Capability.CREATE_INVITE_LINK,
            Capability.READ_MESSAGES,
            Capability.MEMBERSHIP_EVENTS,
            Capability.WELCOME_ON_JOIN,
            Capability.MENTION,
            Capability.DIRECT_MESSAGE,
        }
    ),
    notes={
        Capability.DELETE_MESSAGE: "Redaction of the event.",
        Capability.MUTE: "Power levels: the member's level below events_default.",
        Capability.CREATE_GROUP: "createRoom.",
        Capability.CREATE_INVITE_LINK: "A matrix.to link to a room alias: no member limit, no expiry.",
        Capability.INVITE_LINK_MEMBER_LIMIT: "Room links have no member limit.",
        Capability.INVITE_LINK_EXPIRY: "Room links do not expire (remove the alias instead).",
        Capability.INVITE_LINK_ATTRIBUTION: "A join does not say which link was used.",
        Capability.READ_MESSAGES: "Not in end-to-end encrypted rooms unless the bot holds the keys.",
        Capability.WELCOME_ON_JOIN: "Our bot posts the configured welcome on an m.room.member join.",
        Capability.TAGS: "Matrix has no member tags; qunyun keeps tags itself.",
        Capability.MEMBER_PROFILES: "Only a display name and avatar (/profile): no persona fields.",
        Capability.INTERCEPT_RULES: "No server-side word filter; qunyun's moderation redacts matching messages.",
        Capability.MENTION: "m.mentions user_ids with a matrix.to pill in the formatted body.",
        Capability.DIRECT_MESSAGE: "A direct room (createRoom is_direct, the member invited).",
    },
)
