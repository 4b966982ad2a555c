"""All ORM models, one module per aggregate. Importing this package registers every table."""

# Connector state: each platform's tables (filled by its connector package).
from qunyun.models import matrix_state, telegram_state, wecom_state  # noqa: F401
from qunyun.models.audit import AuditLog
from qunyun.models.channel import Channel
from qunyun.models.commerce import Order, Refund
from qunyun.models.community import Community, Playbook
from qunyun.models.connection import Connection, ConnectionStatus
from qunyun.models.event import Event, EventKind, MessageText, MsgType
from qunyun.models.group import Group, GroupStatus
from qunyun.models.job import Job, JobRun, JobStatus
from qunyun.models.livecode import (
    GroupQrImage,
    LiveCode,
    LiveCodeGroup,
    LiveCodeJoin,
    LiveCodeScan,
    LiveCodeVisitor,
    RoutingPolicy,
    ScanOutcome,
)
from qunyun.models.login import LoginFailure
from qunyun.models.member import Member, Tag, Tagging
from qunyun.models.membership import MembershipSpan
from qunyun.models.moderation import (
    BlacklistScope,
    DecisionSource,
    MemberGroupRole,
    MemberRole,
    ModerationDecision,
    ModerationPolicy,
    ModerationRecentMessage,
    ModerationReversal,
    PolicyTarget,
)
from qunyun.models.onboarding import (
    BenefitGrant,
    CouponCode,
    CouponPool,
    NoticeKind,
    NoticeStatus,
    OnboardingNotice,
    OnboardingThrottle,
)
from qunyun.models.organisation import Organisation
from qunyun.models.outbound import OutboundAction, OutboundActionTransition, OutboundState
from qunyun.models.rollup import GroupDaily, MemberDay, OrgDaily
from qunyun.models.sop import (
    SopApplication,
    SopAttachment,
    SopGroupPause,
    SopPlan,
    SopRun,
    SopRunRetry,
    SopStep,
)
from qunyun.models.staff import AuthToken, Role, Staff, StaffGroupAssignment
from qunyun.models.task import (
    StaffTask,
    StaffTaskEvent,
    StaffTaskNotice,
    TaskEventKind,
    TaskKind,
    TaskNoticeKind,
    TaskStatus,
)
from qunyun.models.webhook import DeliveryStatus, WebhookDelivery, WebhookRejection

__all__ = [
    "AuditLog",
    "AuthToken",
    "BenefitGrant",
    "BlacklistScope",
    "Channel",
    "Community",
    "Connection",
    "ConnectionStatus",
    "CouponCode",
    "CouponPool",
    "DecisionSource",
    "DeliveryStatus",
    "Event",
    "EventKind",
    "Group",
    "GroupDaily",
    "GroupQrImage",
    "GroupStatus",
    "Job",
    "JobRun",
    "JobStatus",
    "LiveCode",
    "LiveCodeGroup",
    "LiveCodeJoin",
    "LiveCodeScan",
    "LiveCodeVisitor",
    "LoginFailure",
    "Member",
    "MemberDay",
    "MemberGroupRole",
    "MemberRole",
    "MembershipSpan",
    "MessageText",
    "ModerationDecision",
    "ModerationPolicy",
    "ModerationRecentMessage",
    "ModerationReversal",
    "MsgType",
    "NoticeKind",
    "NoticeStatus",
    "OnboardingNotice",
    "OnboardingThrottle",
    "Order",
    "OrgDaily",
    "Organisation",
    "OutboundAction",
    "OutboundActionTransition",
    "OutboundState",
    "Playbook",
    "PolicyTarget",
    "Refund",
    "Role",
    "RoutingPolicy",
    "ScanOutcome",
    "SopApplication",
    "SopAttachment",
    "SopGroupPause",
    "SopPlan",
    "SopRun",
    "SopRunRetry",
    "SopStep",
    "Staff",
    "StaffGroupAssignment",
    "StaffTask",
    "StaffTaskEvent",
    "StaffTaskNotice",
    "Tag",
    "Tagging",
    "TaskEventKind",
    "TaskKind",
    "TaskNoticeKind",
    "TaskStatus",
    "WebhookDelivery",
    "WebhookRejection",
]
