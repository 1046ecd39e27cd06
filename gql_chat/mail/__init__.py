"""Mail: what the server sends (verification and reset links), how (SMTP, or `.eml` files in an
outbox while developing), and sending in the background so no operation fails because of it."""
