"""The messages the app sends, as a kind plus parameters, and their text for free-text backends.

Every text is neutral: it never names the union (a supervisor may read the phone's lock screen).
Template-only providers take `kind` and `params` instead of the text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

JOIN_CODE = "join_code"  # params: code
STATUS_CODE = "status_code"  # params: code (the status page proves the phone again)
DECISION = "decision"  # params: link (to the status page)
MESSAGE_KINDS = (JOIN_CODE, STATUS_CODE, DECISION)


@dataclass(frozen=True)
class Message:
    kind: str
    params: Mapping[str, str] = field(default_factory=dict)
    locale: str = "zh"

    @property
    def english(self) -> bool:
        return self.locale.startswith("en")


def render(message: Message) -> str:
    """The text of a message for a backend that sends free text."""
    if message.kind in (JOIN_CODE, STATUS_CODE):
        code = message.params["code"]
        if message.english:
            return f"Your verification code is {code}. It expires in 10 minutes. Do not share it."
        return f"验证码 {code}，10分钟内有效，请勿告诉他人。"
    if message.kind == DECISION:
        link = message.params["link"]
        if message.english:
            return f"There is an update on your application. See it here: {link}"
        return f"您提交的申请有了新进展，请点击查看：{link}"
    raise ValueError(f"unknown message kind {message.kind!r}")


def voice_text(message: Message) -> str:
    """What a voice call says for a code: neutral, the digits one by one (a text-to-speech voice
    reads "012345" as a number), then once more."""
    if message.kind not in (JOIN_CODE, STATUS_CODE):
        raise ValueError(f"only a code is read out, not a {message.kind!r}")
    code = message.params["code"]
    if message.english:
        digits = ", ".join(code)
        return f"Your verification code is: {digits}. Again: {digits}."
    digits = "，".join(code)
    return f"您的验证码是：{digits}。再说一遍：{digits}。"
