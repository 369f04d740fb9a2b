"""Fixed names of the Insight v2 API: paths, media types and headers, spelled as on the wire."""

from __future__ import annotations

#: The vendor media type every v2 JSON request accepts and sends (reference §B1.2).
V2_JSON = "application/vnd.com.fico.xpress.insight.v2+json"
#: The vendor media type for binary downloads.
V2_OCTET_STREAM = "application/vnd.com.fico.xpress.insight.v2+octet-stream"
#: The vendor media type for plain text.
V2_PLAIN = "text/vnd.com.fico.xpress.insight.v2+plain"

TOKEN_PATH = "api/authentication/token"
CURRENT_USER_PATH = "api/authentication/current-user"
COMPUTE_JOBS_PATH = "api/compute-jobs"
COMPUTE_JOB_MESSAGES_PATH = "api/compute-job-messages"

#: Handshake response header naming the socket, sent back on job submission (§A4).
CONNECTION_ID_HEADER = "connection-id"

#: Multipart part names of ``POST /api/compute-jobs`` (§A8).
COMPUTE_JOB_REQUEST_PART = "computeJobRequest"
PAYLOAD_PART = "payload"

#: Job ids are 1 to 60 characters of this alphabet (§A8).
JOB_ID_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
JOB_ID_MAX_LENGTH = 60


def is_valid_job_id(job_id: str) -> bool:
    """Tell whether ``job_id`` follows the compute-job id rules of §A8."""
    return 0 < len(job_id) <= JOB_ID_MAX_LENGTH and set(job_id) <= JOB_ID_ALPHABET
