"""Why a provider sign-in failed, as the frontend is told (`?error=<code>` on its return page).

Every failure of the flow is one `SignInFailed` with one of these codes; the details (a
provider's message, which claim was wrong) go to the log, never to the browser."""

from __future__ import annotations

from enum import StrEnum


class SignInFailure(StrEnum):
    ACCESS_DENIED = "access_denied"
    """The user cancelled at the provider, or it refused."""
    INVALID_REQUEST = "invalid_request"
    """The callback matches no flow this browser started (forged, replayed or expired state)."""
    PROVIDER_UNAVAILABLE = "provider_unavailable"
    """The provider could not be reached, or answered with an error."""
    INVALID_TOKEN = "invalid_token"
    """The provider's ID token failed validation (signature, issuer, audience, expiry, nonce)."""
    EMAIL_REQUIRED = "email_required"
    """The provider shared no usable email address."""
    EMAIL_NOT_VERIFIED = "email_not_verified"
    """An account has this address, and the provider does not vouch for it: not linked."""
    ACCOUNT_DISABLED = "account_disabled"
    LINK_REFUSED = "link_refused"
    """The address is an administrator's: they sign in with their password and link the
    provider themselves."""
    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    """Something failed on this server (logged)."""


class SignInFailed(Exception):
    def __init__(self, failure: SignInFailure, detail: str = "") -> None:
        super().__init__(failure.value)
        self.failure = failure
        self.detail = detail
        """For the log: never shown to the browser."""
