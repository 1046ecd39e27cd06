"""Signing in with OpenID Connect providers: the relying party's side of the authorization
code flow with PKCE (authlib's Starlette client), and its errors."""
