"""`GET /files/{id}`: an attachment's bytes, for a signed URL (`Attachment.url`, what an
`<img>` uses; or a shared message's, signed for its share) or for its owner's bearer token
(what an API client uses).

A bad or expired signature is 403; a file that is not the signer's (or the token's user's), or
no longer exists, is 404. The bytes stream from GridFS a chunk at a time, under headers that
stop a browser from running anything in them: their stored type, `nosniff`, and a sandboxing
CSP."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response, StreamingResponse

from gql_chat.api.context import bearer_token
from gql_chat.domain.attachments import AttachmentKind, AttachmentRecord
from gql_chat.errors import DomainError, NotFound, Unauthenticated
from gql_chat.services.file_urls import BadSignature
from gql_chat.services.registry import Services

FILE_CSP = "sandbox; default-src 'none'; img-src 'self'; style-src 'unsafe-inline'"
SIGNED_PARAMETERS = ("user", "expires", "signature")
SHARED_PARAMETERS = ("share", "expires", "signature")


async def download_file(request: Request) -> Response:
    services: Services = request.app.state.services
    attachment_id = request.path_params["attachment_id"]
    query = request.query_params
    try:
        if "share" in query:  # a file of a share link, for anyone who reads it
            download = await services.shares.download(
                attachment_id, *(query.get(name, "") for name in SHARED_PARAMETERS)
            )
        elif any(name in query for name in SIGNED_PARAMETERS):
            download = await services.attachments.download_signed(
                attachment_id, *(query.get(name, "") for name in SIGNED_PARAMETERS)
            )
        else:
            token = bearer_token(request.headers.get("authorization"))
            if token is None:
                raise Unauthenticated()
            sign_in = await services.accounts.authenticate(token)
            download = await services.attachments.download(sign_in.user.id, attachment_id)
    except BadSignature:
        return PlainTextResponse("The link is invalid or has expired.", status_code=403)
    except Unauthenticated:
        return PlainTextResponse(
            "Sign in: send a bearer token, or use the attachment's signed url.",
            status_code=401,
        )
    except NotFound:
        return PlainTextResponse("Not found.", status_code=404)
    except DomainError as exc:
        return PlainTextResponse(exc.message, status_code=400)
    attachment = download.attachment
    headers = _headers(attachment, as_attachment="download" in query)
    if request.method == "HEAD" or _not_modified(request, attachment):
        await download.chunks.aclose()  # nothing of the body is read
        if request.method == "HEAD":
            return Response(headers=headers, media_type=_content_type(attachment))
        del headers["content-length"]
        return Response(status_code=304, headers=headers)
    return StreamingResponse(
        _closing(download.chunks), media_type=_content_type(attachment), headers=headers
    )


def _headers(attachment: AttachmentRecord, *, as_attachment: bool) -> dict[str, str]:
    inline = attachment.kind is AttachmentKind.IMAGE and not as_attachment
    return {
        "content-length": str(attachment.size),
        "content-disposition": _disposition(attachment.filename, inline=inline),
        "content-security-policy": FILE_CSP,
        "x-content-type-options": "nosniff",
        "cross-origin-resource-policy": "cross-origin",
        "cache-control": "private, max-age=3600",
        "etag": f'"{attachment.sha256}"',
    }


def _not_modified(request: Request, attachment: AttachmentRecord) -> bool:
    """The browser holds these bytes already (`If-None-Match` names their sha256)."""
    tags = request.headers.get("if-none-match", "")
    return tags.strip() == "*" or f'"{attachment.sha256}"' in {
        tag.strip().removeprefix("W/") for tag in tags.split(",")
    }


def _content_type(attachment: AttachmentRecord) -> str:
    if attachment.kind is AttachmentKind.TEXT:
        return f"{attachment.media_type}; charset=utf-8"
    return attachment.media_type


def _disposition(filename: str, *, inline: bool) -> str:
    """RFC 6266: an ASCII fallback and the exact name, percent-encoded (RFC 8187)."""
    fallback = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


async def _closing(chunks: AsyncGenerator[bytes]) -> AsyncIterator[bytes]:
    """The GridFS stream is closed even when the client leaves halfway."""
    try:
        async for chunk in chunks:
            yield chunk
    finally:
        await chunks.aclose()


async def download_archive(request: Request) -> Response:
    """`GET /exports/{job id}`: an account archive, for its signed URL (`ExportJob.url`)."""
    services: Services = request.app.state.services
    query = request.query_params
    try:
        download = await services.exports.download(
            request.path_params["job_id"], *(query.get(name, "") for name in SIGNED_PARAMETERS)
        )
    except BadSignature:
        return PlainTextResponse("The link is invalid or has expired.", status_code=403)
    except NotFound:
        return PlainTextResponse("Not found.", status_code=404)
    job = download.job
    created = job.created_at.strftime("%Y-%m-%d")
    headers = {
        "content-disposition": _disposition(f"gql_chat-export-{created}.zip", inline=False),
        "x-content-type-options": "nosniff",
        "cache-control": "private, no-store",
        **({"content-length": str(job.size)} if job.size is not None else {}),
    }
    return StreamingResponse(
        _closing(download.chunks), media_type="application/zip", headers=headers
    )
