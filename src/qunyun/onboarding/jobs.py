"""Onboarding's jobs: a group's batched greeting, and one join's new-member benefit."""

from __future__ import annotations

from sqlalchemy.orm import Session

from qunyun.onboarding.benefits import BENEFIT_JOB, BenefitJob, grant
from qunyun.onboarding.greetings import GREET_JOB, GreetJob, send_due
from qunyun.worker.queue import job_handler


@job_handler(GREET_JOB, payload=GreetJob)
def greet(session: Session, payload: GreetJob) -> None:
    """One welcome or name-card reminder naming the group's members who are due."""
    send_due(session, payload)


@job_handler(BENEFIT_JOB, payload=BenefitJob)
def give_benefit(session: Session, payload: BenefitJob) -> None:
    """The coupon code of one join, sent privately (or the owner's task)."""
    grant(session, payload)
