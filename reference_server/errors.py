"""Azure error codes: one table of code -> (HTTP status, message); one place renders the XML body.

Handlers, the store and auth raise ``StorageError("BlobNotFound")``; the app's middleware turns it
into ``<Error><Code>..</Code><Message>..</Message></Error>`` plus ``x-ms-error-code``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# code -> (status, default message). Messages follow Azure's wording closely; SDKs choose retries
# from the code, so the code is what matters.
ERROR_TABLE: dict[str, tuple[int, str]] = {
    # 400
    "InvalidHeaderValue": (
        400,
        "The value for one of the HTTP headers is not in the correct format.",
    ),
    "InvalidQueryParameterValue": (
        400,
        "Value for one of the query parameters specified in the request URI is invalid.",
    ),
    "InvalidInput": (400, "One of the request inputs is not valid."),
    "InvalidUri": (400, "The requested URI does not represent any resource on the server."),
    "InvalidResourceName": (400, "The specifed resource name contains invalid characters."),
    "OutOfRangeInput": (400, "One of the request inputs is out of range."),
    "OutOfRangeQueryParameterValue": (
        400,
        "One of the query parameters specified in the request URI is outside the permissible range.",
    ),
    "InvalidXmlDocument": (400, "XML specified is not syntactically valid."),
    "InvalidXmlNodeValue": (
        400,
        "The value for one of the XML nodes is not in the correct format.",
    ),
    "Md5Mismatch": (
        400,
        "The MD5 value specified in the request did not match with the MD5 value calculated by the server.",
    ),
    "Crc64Mismatch": (
        400,
        "The CRC64 value specified in the request did not match with the CRC64 value calculated by the server.",
    ),
    "BothCrc64AndMd5HeaderPresent": (
        400,
        "Both x-ms-content-crc64 header and Content-MD5 header are present.",
    ),
    "InvalidMd5": (
        400,
        "The MD5 value specified in the request is invalid. The MD5 value must be 128 bits and Base64-encoded.",
    ),
    "MissingRequiredHeader": (
        400,
        "An HTTP header that's mandatory for this request is not specified.",
    ),
    "MissingRequiredQueryParameter": (
        400,
        "A query parameter that's mandatory for this request is not specified.",
    ),
    "InvalidBlockId": (
        400,
        "The specified block ID is invalid. The block ID must be Base64-encoded.",
    ),
    "InvalidBlockList": (400, "The specified block list is invalid."),
    "InvalidBlobOrBlock": (400, "The specified blob or block content is invalid."),
    "BlockListTooLong": (400, "The block list may not contain more than 50,000 blocks."),
    "BlockCountExceedsLimit": (
        409,
        "The uncommitted block count cannot exceed the maximum limit of 100,000 blocks.",
    ),
    "RequestBodyTooLarge": (
        413,
        "The request body is too large and exceeds the maximum permissible limit.",
    ),
    "InvalidRange": (416, "The range specified is invalid for the current size of the resource."),
    "UnsupportedHeader": (
        400,
        "One of the HTTP headers specified in the request is not supported.",
    ),
    "InvalidMetadata": (
        400,
        "The metadata specified is invalid. It has characters that are not permitted.",
    ),
    "MetadataTooLarge": (
        400,
        "The size of the specified metadata exceeds the maximum size permitted.",
    ),
    "EmptyMetadataKey": (400, "The key for one of the metadata key-value pairs is empty."),
    "InvalidBlobType": (409, "The blob type is invalid for this operation."),
    # what Azure answers an account kind without that blob type ("Page blob is not supported for
    # this account type.", "Block blobs are not supported.")
    "BlobTypeNotSupported": (400, "The blob type is not supported for this account type."),
    "InvalidSourceBlobUrl": (409, "The source url for copy source is invalid."),
    "InvalidOperation": (400, "Invalid operation against a blob snapshot."),
    "InvalidPath": (
        400,
        "The blob name maps to a path that conflicts with an existing file or directory.",
    ),
    # HTTP framing the parser refuses (reference_server/connections.py)
    "InvalidHttpVerb": (400, "The HTTP verb specified was not recognized by the server."),
    "RequestUrlFailedToParse": (400, "The url in the request could not be parsed."),
    # 401: an anonymous request to a private resource (x-ms-version 2019-12-12 and later), sent
    # with a WWW-Authenticate bearer challenge
    "NoAuthenticationInformation": (
        401,
        "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
    ),
    # 401: a bearer token that fails validation, sent with the tenant's bearer challenge
    "InvalidAuthenticationInfo": (
        401,
        "Server failed to authenticate the request. Please refer to the information in the www-authenticate header.",
    ),
    # 403
    "AuthenticationFailed": (
        403,
        "Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.",
    ),
    "AuthorizationFailure": (403, "This request is not authorized to perform this operation."),
    "AuthorizationPermissionMismatch": (
        403,
        "This request is not authorized to perform this operation using this permission.",
    ),
    "AuthorizationResourceTypeMismatch": (
        403,
        "This request is not authorized to perform this operation using this resource type.",
    ),
    "AuthorizationServiceMismatch": (
        403,
        "This request is not authorized to perform this operation using this service.",
    ),
    "AuthorizationProtocolMismatch": (
        403,
        "This request is not authorized to perform this operation using this protocol.",
    ),
    "AuthorizationSourceIPMismatch": (
        403,
        "This request is not authorized to perform this operation using this source IP.",
    ),
    "InsufficientAccountPermissions": (
        403,
        "The account being accessed does not have sufficient permissions to execute this operation.",
    ),
    "CannotVerifyCopySource": (403, "This request is not authorized to perform this operation."),
    # 404
    "ResourceNotFound": (404, "The specified resource does not exist."),
    "ContainerNotFound": (404, "The specified container does not exist."),
    "BlobNotFound": (404, "The specified blob does not exist."),
    "AccountNotFound": (404, "The specified account does not exist."),
    "CopyIdMismatch": (
        409,
        "The specified copy ID did not match the copy ID for the pending copy operation.",
    ),
    "NoPendingCopyOperation": (409, "There is currently no pending copy operation."),
    "PendingCopyOperation": (409, "There is currently a pending copy operation."),
    # 405 / 409 / 412 / 413
    "UnsupportedHttpVerb": (405, "The resource doesn't support the specified HTTP verb."),
    "ContainerAlreadyExists": (409, "The specified container already exists."),
    "ContainerBeingDeleted": (409, "The specified container is being deleted."),
    "BlobAlreadyExists": (409, "The specified blob already exists."),
    "UnsatisfiableCondition": (
        400,
        "The request includes an unsatisfiable condition for this operation.",
    ),
    "ConditionNotMet": (
        412,
        "The condition specified using HTTP conditional header(s) is not met.",
    ),
    "TargetConditionNotMet": (
        412,
        "The target condition specified using HTTP conditional header(s) is not met.",
    ),
    "SourceConditionNotMet": (
        412,
        "The source condition specified using HTTP conditional header(s) is not met.",
    ),
    "LeaseNotPresentWithBlobOperation": (412, "There is currently no lease on the blob."),
    "LeaseNotPresentWithContainerOperation": (412, "There is currently no lease on the container."),
    "NotModified": (304, ""),
    # 5xx
    "InternalError": (500, "The server encountered an internal error. Please retry the request."),
    "NotImplemented": (
        501,
        "The requested operation is not implemented on the specified resource.",
    ),
    "ServerBusy": (
        503,
        "The server is currently unable to receive requests. Please retry your request.",
    ),
    "OperationTimedOut": (500, "The operation could not be completed within the permitted time."),
    # Not an Azure code (Azure never runs out of space where a client can see it): the data root
    # is full (ENOSPC) or over quota (EDQUOT). 507 is HTTP's own status for it (RFC 4918), and
    # clients do not retry it (AzCopy and azure-core retry 408/429/500/502/503/504), so a full
    # disk fails a transfer at once instead of after 20 retries, and never counts as throttling.
    "InsufficientStorage": (
        507,
        "The server has no space left to store the data of this request.",
    ),
}


@dataclass
class StorageError(Exception):
    """An Azure Storage error. ``code`` must be a key of ERROR_TABLE."""

    code: str
    message: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    # Extra child elements of <Error> (e.g. AuthenticationErrorDetail, HeaderName)
    details: dict[str, str] = field(default_factory=dict)
    # Overrides the table's status where Azure varies it per occurrence: CannotVerifyCopySource
    # answers with the status the copy source returned.
    http_status: int | None = None

    def __post_init__(self) -> None:
        if self.code not in ERROR_TABLE:
            raise KeyError(f"unknown Azure error code {self.code!r}: add it to ERROR_TABLE")
        super().__init__(self.code)

    @property
    def status(self) -> int:
        return self.http_status or ERROR_TABLE[self.code][0]

    @property
    def text(self) -> str:
        return self.message or ERROR_TABLE[self.code][1]
