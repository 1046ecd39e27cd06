"""The mails the server sends, as plain text plus simple HTML (the same words), built from
small templates. Links are built by the caller from the frontend's base URL."""

from __future__ import annotations

import html
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    paragraphs: tuple[str, ...]
    link: str
    link_text: str

    def message(self, sender: str) -> EmailMessage:
        """An RFC 5322 message: text first, HTML as its alternative."""
        message = EmailMessage()
        message["From"] = sender
        message["To"] = self.to
        message["Subject"] = self.subject
        message["Message-ID"] = make_msgid(domain="gql-chat.local")
        text = "\n\n".join([*self.paragraphs, f"{self.link_text}: {self.link}"])
        message.set_content(text + "\n")
        body = "".join(f"<p>{html.escape(p)}</p>" for p in self.paragraphs)
        anchor = f'<p><a href="{html.escape(self.link)}">{html.escape(self.link_text)}</a></p>'
        message.add_alternative(
            f"<!doctype html><html><body>{body}{anchor}</body></html>\n", "html"
        )
        return message


def verification_mail(to: str, name: str, link: str, hours: int) -> Mail:
    return Mail(
        to=to,
        subject="Confirm your email address",
        paragraphs=(
            f"Hello {name},",
            f"Please confirm that {to} is your email address. The link works for {hours} hours.",
            "If you did not sign up, you can ignore this mail.",
        ),
        link=link,
        link_text="Confirm my address",
    )


def password_reset_mail(to: str, name: str, link: str, minutes: int) -> Mail:
    return Mail(
        to=to,
        subject="Reset your password",
        paragraphs=(
            f"Hello {name},",
            "Someone asked to reset the password of this account. If it was you, choose a new "
            f"password with the link below; it works once, for {minutes} minutes, and signs "
            "out every device.",
            "If it was not you, ignore this mail: your password stays as it is.",
        ),
        link=link,
        link_text="Choose a new password",
    )


def new_address_mail(to: str, name: str, link: str, hours: int) -> Mail:
    return Mail(
        to=to,
        subject="Confirm your new email address",
        paragraphs=(
            f"Hello {name},",
            f"Please confirm {to} as the new address of your account; until you do, the old "
            f"one stays. The link works for {hours} hours.",
            "If you did not ask for this, ignore this mail.",
        ),
        link=link,
        link_text="Use this address",
    )


def address_changed_mail(to: str, name: str, new_address: str, link: str) -> Mail:
    """To the old address, once the new one is confirmed."""
    return Mail(
        to=to,
        subject="Your email address was changed",
        paragraphs=(
            f"Hello {name},",
            f"The email address of your account is now {new_address}; mail goes there from now on.",
            "If you did not do this, someone else may be signed in to your account: sign in, "
            "end the sessions you do not know, and change your password.",
        ),
        link=link,
        link_text="Sign in",
    )
