"""The one error-classification table: every Azure failure, and every refusal of the
Kubernetes API, becomes retryable (with a delay) or fatal (with a condition reason), and a
message that names Azure's request id."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ServiceRequestError,
    ServiceResponseError,
)

from aml_identity.api.common import Reason

FAST, SLOW, VERY_SLOW = 5.0, 60.0, 300.0
MAX_RETRY_AFTER = 3600.0  # throttling can only slow us down, never stop us


@dataclass(frozen=True)
class Rule:
    retryable: bool
    reason: Reason
    delay: float


# (HTTP status, ARM error code) -> what it means for a reconcile. Status alone (code None)
# is the fallback for that status.
TABLE: dict[tuple[int, str | None], Rule] = {
    (429, None): Rule(True, Reason.THROTTLED, SLOW),
    (400, "PrincipalNotFound"): Rule(True, Reason.WAITING_FOR_PRINCIPAL_REPLICATION, FAST),
    (409, "ConcurrentFederatedIdentityCredentialsWritesForSingleManagedIdentity"): Rule(
        True, Reason.RECONCILING, FAST
    ),
    # The role is granted under another name that the (shared) listing did not show yet:
    # look again soon, with a fresh listing (the gateway drops it), and adopt it or
    # report how it differs.
    (409, "RoleAssignmentExists"): Rule(True, Reason.RECONCILING, FAST),
    (409, "RoleDefinitionWithSameNameExists"): Rule(False, Reason.CONFLICT, VERY_SLOW),
    # Its assignments are usually being deleted at the same time (a namespace or a whole
    # workload going): look again soon.
    (409, "RoleDefinitionHasAssignments"): Rule(True, Reason.DELETION_BLOCKED, 10.0),
    (400, "RoleAssignmentUpdateNotPermitted"): Rule(False, Reason.CONFLICT, VERY_SLOW),
    (400, "UnmatchedPrincipalType"): Rule(False, Reason.INVALID_SPEC, VERY_SLOW),
    (400, "RoleDefinitionDoesNotExist"): Rule(False, Reason.INVALID_SPEC, VERY_SLOW),
    (400, "RoleAssignmentLimitExceeded"): Rule(False, Reason.AZURE_ERROR, VERY_SLOW),
    (400, "InvalidResourceLocation"): Rule(False, Reason.INVALID_SPEC, VERY_SLOW),
    (400, "LinkedInvalidPropertyId"): Rule(False, Reason.INVALID_SPEC, VERY_SLOW),
    (400, "BadRequest"): Rule(False, Reason.INVALID_SPEC, VERY_SLOW),
    (400, None): Rule(False, Reason.INVALID_SPEC, VERY_SLOW),
    # Permissions can be granted at any time: a person must act, but the operator keeps
    # looking every minute so access that returns is used without a restart.
    (403, "AuthorizationFailed"): Rule(False, Reason.FORBIDDEN, SLOW),
    (403, "LinkedAuthorizationFailed"): Rule(False, Reason.FORBIDDEN, SLOW),
    (403, None): Rule(False, Reason.FORBIDDEN, SLOW),
    (401, None): Rule(True, Reason.AZURE_ERROR, SLOW),
    (404, "ResourceGroupNotFound"): Rule(False, Reason.INVALID_SPEC, VERY_SLOW),
    (404, "SubscriptionNotFound"): Rule(False, Reason.INVALID_SPEC, VERY_SLOW),
    (404, "ParentResourceNotFound"): Rule(True, Reason.RECONCILING, FAST),
    (404, None): Rule(False, Reason.INVALID_SPEC, VERY_SLOW),
    # Another operation holds the object for a moment (ARM; Key Vault's "Conflict" is a
    # certificate operation in progress).
    (409, "AnotherOperationInProgress"): Rule(True, Reason.RECONCILING, FAST),
    (409, "Conflict"): Rule(True, Reason.RECONCILING, SLOW),
    # A management lock (CanNotDelete / ReadOnly) on the scope: a person must lift it.
    (409, "ScopeLocked"): Rule(False, Reason.FORBIDDEN, SLOW),
    # Key Vault (inner error code): the name belongs to a soft-deleted certificate, which
    # must be recovered or purged before the name can be used again.
    (409, "ObjectIsDeletedButRecoverable"): Rule(False, Reason.CONFLICT, VERY_SLOW),
    # Any other conflict will not pass by itself: Ready=False, a Warning, and a look once
    # a minute rather than every few seconds forever.
    (409, None): Rule(False, Reason.AZURE_ERROR, SLOW),
    # Microsoft Graph (OData error codes).
    (403, "Authorization_RequestDenied"): Rule(False, Reason.FORBIDDEN, SLOW),
    # Graph replicates between its own replicas: an object just created may not be
    # readable for a few seconds.
    (404, "Request_ResourceNotFound"): Rule(True, Reason.RECONCILING, FAST),
    (400, "Request_MultipleObjectsWithSameKeyValue"): Rule(False, Reason.CONFLICT, VERY_SLOW),
    (400, "Request_BadRequest"): Rule(False, Reason.INVALID_SPEC, VERY_SLOW),
}
# The Kubernetes API's answers to the operator's own requests (service accounts, Secrets,
# wake-ups), by HTTP status: the same outcomes, in the same table's terms.
KUBERNETES: dict[int, Rule] = {
    404: Rule(True, Reason.RECONCILING, FAST),  # deleted meanwhile: look again
    409: Rule(True, Reason.RECONCILING, FAST),  # changed meanwhile: read it again
    403: Rule(False, Reason.FORBIDDEN, SLOW),  # the operator's RBAC lacks it: a person acts
    422: Rule(False, Reason.INVALID_SPEC, VERY_SLOW),
    429: Rule(True, Reason.THROTTLED, FAST),
}
KUBERNETES_OTHER = Rule(True, Reason.KUBERNETES_ERROR, 30.0)
SERVER_ERROR = Rule(True, Reason.AZURE_ERROR, 30.0)
UNREACHABLE = Rule(True, Reason.AZURE_ERROR, 30.0)
AUTHENTICATION = Rule(True, Reason.AZURE_ERROR, SLOW)


@dataclass(frozen=True)
class AzureFailure(Exception):
    """A classified Azure failure, ready for a condition and a retry decision."""

    retryable: bool
    reason: Reason
    delay: float
    status: int | None
    code: str | None
    message: str
    request_id: str | None

    def __str__(self) -> str:
        where = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.summary}{where}"

    @property
    def summary(self) -> str:
        """Code and message without the request id: the same failure reads the same
        each time (a condition that repeats it is not rewritten at every look)."""
        code = f"{self.code}: " if self.code else ""
        return f"{code}{self.message}"


def classify(error: Exception) -> AzureFailure:
    """Map an azure-core exception to a rule of the table."""
    if isinstance(error, AzureFailure):
        return error
    if isinstance(error, ClientAuthenticationError) and getattr(error, "status_code", None) in (
        None,
        400,
        401,
    ):
        return _failure(AUTHENTICATION, None, None, _first_line(str(error.message)), None)
    if isinstance(error, HttpResponseError):
        status = error.status_code or 0
        code = error.error.code if error.error is not None else None
        # A service's more specific code (Key Vault's inner error) decides when known.
        inner = (getattr(error.error, "innererror", None) or {}).get("code")
        if inner and (status, inner) in TABLE:
            code = inner
        message = error.error.message if error.error is not None else str(error.message)
        response = error.response
        headers = getattr(response, "headers", None) or {}
        # ARM's request id, or Microsoft Graph's.
        request_id = headers.get("x-ms-request-id") or headers.get("request-id")
        if status >= 500:
            rule = SERVER_ERROR
        else:
            rule = TABLE.get((status, code)) or TABLE.get((status, None)) or SERVER_ERROR
        delay = rule.delay
        if status == 429:
            delay = _retry_after(headers.get("Retry-After"), rule.delay)
        return _failure(rule, status, code, _first_line(str(message)), request_id, delay)
    if isinstance(error, (ServiceRequestError, ServiceResponseError)):
        return _failure(UNREACHABLE, None, None, _first_line(str(error)), None)
    raise error


def kubernetes_failure(status: int, reason: str, message: str) -> AzureFailure:
    """A Kubernetes API error answer, classified like Azure's."""
    rule = KUBERNETES.get(status, KUBERNETES_OTHER)
    return _failure(rule, status, reason or None, f"Kubernetes API: {_first_line(message)}", None)


def _failure(
    rule: Rule,
    status: int | None,
    code: str | None,
    message: str,
    request_id: str | None,
    delay: float | None = None,
) -> AzureFailure:
    return AzureFailure(
        retryable=rule.retryable,
        reason=rule.reason,
        delay=rule.delay if delay is None else delay,
        status=status,
        code=code,
        message=message,
        request_id=request_id,
    )


def _retry_after(value: str | None, default: float) -> float:
    try:
        return min(MAX_RETRY_AFTER, max(1.0, float(value))) if value else default
    except ValueError:
        return default


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


# Not-found answers that mean the request itself cannot succeed, not that the object
# is missing: a missing resource group or subscription is a spec problem.
MISSING_CONTAINERS = frozenset({"ResourceGroupNotFound", "SubscriptionNotFound"})
T = TypeVar("T")


def gone(failure: AzureFailure) -> bool:
    """For a delete: the object is not there, or neither is what held it (its resource
    group, subscription or parent resource), so there is nothing left to delete."""
    return failure.status == 404


def nothing_to_find(failure: AzureFailure) -> bool:
    """For a delete with nothing recorded: Azure will not show the place (forbidden, the
    scope is invalid or gone). The operator could not have created anything there
    either, so waiting would only keep the resource, and its namespace, from going."""
    return gone(failure) or not failure.retryable


async def call(run: Callable[[], Awaitable[T]]) -> T:
    """Run one SDK call; any failure leaves as a classified AzureFailure."""
    try:
        return await run()
    except AzureError as error:
        raise classify(error) from None


async def maybe(run: Callable[[], Awaitable[T]]) -> T | None:
    """Like `call`, but None for a 404: a missing object is an answer, not a failure."""
    try:
        return await run()
    except AzureError as error:
        failure = classify(error)
        if failure.status == 404 and failure.code not in MISSING_CONTAINERS:
            return None
        raise failure from None


def aware(value: datetime | None) -> datetime:
    """SDK datetimes as timezone-aware UTC; a missing one as the earliest time."""
    if value is None:
        return datetime.min.replace(tzinfo=UTC)
    return value if value.tzinfo else value.replace(tzinfo=UTC)
