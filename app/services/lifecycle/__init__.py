"""After applying: questions to the applicant, one appeal, the escalation queue and daily reminders.

* "Needs more information": an official of the member's district asks a question (`ask`); the
  worker gets the neutral status-link SMS (event `QuestionAsked`), answers on the status page
  after the code (`answer`), and the official reads the answer on the member page. The member
  stays `pending` throughout; while a question waits for its answer the application is "waiting
  for the applicant": counted apart in reminders and never escalated.
* One appeal: a rejected applicant may appeal once (`appeal`). The application is pending again
  and goes straight to the federation admin's escalation queue; the decision that follows goes
  through app/services/decisions.py like any other and closes the appeal.
* Escalation: a pending application past its deadline (APPROVAL_WORKING_DAYS working days,
  app/services/deadlines.py) is on the queue (`escalations`), where an admin decides it or sends it
  back to the district with a note (`send_back`); the deadline then counts again from that day.
* Reminders: once a day each district's officials hear how many applications are due by the next
  working day, overdue, or waiting for an answer (`reminders`, `send_reminders`). Counts only.

Question, answer, appeal and note texts are personal: ciphertext, like names. Services flush, never
commit; the audit log holds ids and counts.
"""

from app.services.lifecycle.queue import (
    APPEAL,
    OVERDUE,
    REMINDER_SENT,
    Escalated,
    NoteView,
    Reminder,
    escalations,
    held_for_admin,
    is_escalated,
    log_delivery,
    notes,
    reminders,
    send_back,
    send_reminders,
)
from app.services.lifecycle.requests import (
    MAX_TEXT,
    AppealRefused,
    NoOpenQuestion,
    NotPending,
    QuestionAsked,
    QuestionOpen,
    QuestionView,
    TextInvalid,
    answer,
    appeal,
    appeal_of,
    ask,
    can_appeal,
    decided,
    open_question,
    questions,
)

__all__ = [
    "APPEAL",
    "MAX_TEXT",
    "OVERDUE",
    "REMINDER_SENT",
    "AppealRefused",
    "Escalated",
    "NoOpenQuestion",
    "NoteView",
    "NotPending",
    "QuestionAsked",
    "QuestionOpen",
    "QuestionView",
    "Reminder",
    "TextInvalid",
    "answer",
    "appeal",
    "appeal_of",
    "ask",
    "can_appeal",
    "decided",
    "escalations",
    "held_for_admin",
    "is_escalated",
    "log_delivery",
    "notes",
    "open_question",
    "questions",
    "reminders",
    "send_back",
    "send_reminders",
]
