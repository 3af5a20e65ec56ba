"""HTTP routes for contacts: translate requests to service calls and back, nothing else."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.openapi import ResponseSpec

from contacts_api.accounts.schemas import Principal
from contacts_api.contacts import service
from contacts_api.contacts.create_batch import CreateJob
from contacts_api.contacts.manage_router import CONTACT_LINKS
from contacts_api.contacts.schemas import ContactCreate, ContactEnvelope, ContactPayload
from contacts_api.http import metrics
from contacts_api.http.auth import CurrentPrincipal
from contacts_api.http.body import read_json_object
from contacts_api.http.openapi_docs import AUTH_RESPONSES, BODY_RESPONSES, message_response
from contacts_api.storage.group_commit import GroupCommitter
from contacts_api.timeutil import utcnow

CREATE_CONTACT = "create_contact"  # the route's name, by which its hot route finds it


@post(
    "/contacts",
    name=CREATE_CONTACT,
    status_code=201,
    opt={"request_body": ContactCreate, "links": {201: CONTACT_LINKS, 200: CONTACT_LINKS}},
    responses={
        **AUTH_RESPONSES,
        **BODY_RESPONSES,
        200: ResponseSpec(
            data_container=ContactEnvelope,
            description="The email matched a live contact of the account, which was updated",
        ),
        409: message_response("Email taken (only with CONTACTS_API_DUPLICATE_EMAIL=reject)"),
    },
)
async def create_contact(
    request: Request[Any, Any, Any], principal: CurrentPrincipal
) -> Response[ContactEnvelope]:
    """Create a contact (201), or update the live contact with the same email (200)."""
    status, envelope = await create_from_request(request, principal)
    return Response(envelope, status_code=status)


async def create_from_request(
    request: Request[Any, Any, Any], principal: Principal
) -> tuple[int, ContactEnvelope]:
    """The work of POST /v1/contacts once the caller is admitted: (status, body).

    Shared by the Litestar route and the pure-ASGI hot route (http/hot_routes.py)."""
    data = service.parse_contact_create(await read_json_object(request))
    # Group commit: the webhook outbox rows go in the same batch transaction as the contact
    # (see contacts/create_batch.py), so a webhook is queued if and only if the change commits.
    committer: GroupCommitter[CreateJob, service.CreateOutcome] = request.app.state.committer
    outcome = await committer.submit(CreateJob(principal, data, utcnow()))
    if outcome.created:
        metrics.CONTACTS_CREATED.inc()
    envelope = ContactEnvelope(ContactPayload(service.contact_read(outcome.contact)))
    return (201 if outcome.created else 200), envelope
