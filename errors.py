"""Errors the service reports, each with a stable ``code`` and an HTTP status.

Every failure a client can see is one of these; the API turns any of them into
the single error body ``{"success": false, "error": <sentence>, "error_code": <code>}``.
Anything else that escapes is logged and answered as ``internal_error`` without detail.

ExtractorError (500 internal_error)
├── RequestError (400)
│   ├── MissingFile, InvalidFileType, InvalidMimeType, FileTooSmall, InvalidPagesSpec,
│   ├── InvalidFilename, InvalidUserId, InvalidUploadDevice
│   ├── WebhookRefused (webhook_url_refused)
│   └── InvalidField (bad chunk_size, extract_type, ...)
├── AuthError (401 unauthorized)
├── JobNotFound (404 job_not_found)
├── IdempotencyConflict (409 idempotency_conflict)
├── JobExpired (410 job_expired)
├── PayloadTooLarge (413 file_too_large)
│   └── TooLargeToScan (413 too_large_for_scanner)
├── ServiceUnavailable (503)
│   ├── JobStoreUnavailable (503 job_store_unavailable)
│   ├── AntivirusUnavailable (503 antivirus_unavailable)
│   ├── NotReady (503 not_ready: /ready names the failing part)
│   └── Busy (429 busy)
│       └── ShuttingDown (503 busy, while the worker shuts down)
├── SyncTimeout (504 sync_timeout)
└── ExtractionError (422; a job's failure outcome, stored on the job)
    ├── PasswordRequired, WrongPassword, CorruptPdf, TooManyPages, InvalidPages,
    ├── NoText, NoTextLayer, ParserCrash, ExtractTimeout, Stalled, MemoryLimit,
    ├── Cancelled, WorkerLost, PdfFeatureRejected, DangerousContent
    └── MalwareDetected (refused at upload, before a job exists)
"""

from __future__ import annotations

from typing import Any


class ExtractorError(Exception):
    """Base of every error the service reports to a client."""

    code = "internal_error"
    status = 500
    default_message = "The server hit an unexpected error. Please try again."

    def __init__(self, message: str | None = None, **details: Any) -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)

    def to_body(self) -> dict[str, Any]:
        """Return the one JSON error body shape."""
        return {"success": False, "error": self.message, "error_code": self.code, **self.details}


class RequestError(ExtractorError):
    code = "bad_request"
    status = 400
    default_message = "The request is not valid."


class MissingFile(RequestError):
    code = "missing_file"
    default_message = "No file was uploaded: send the PDF as the multipart field 'file'."


class InvalidFileType(RequestError):
    code = "invalid_file_type"
    default_message = "Only PDF files are accepted."


class FileTooSmall(RequestError):
    code = "file_too_small"
    default_message = "The file is too small to be a PDF."


class InvalidPagesSpec(RequestError):
    code = "invalid_pages_spec"
    default_message = "The 'pages' field must look like '1,3,5-9' (1-based page numbers)."


class InvalidField(RequestError):
    code = "invalid_field"


class InvalidMimeType(RequestError):
    code = "invalid_mime_type"
    default_message = "The file's content is not a PDF."


class InvalidFilename(RequestError):
    code = "invalid_filename"
    default_message = "The file name is not allowed."


class InvalidUserId(RequestError):
    code = "invalid_user_id"
    default_message = "'user_id' must be a UUID like 123e4567-e89b-12d3-a456-426614174000."


class InvalidUploadDevice(RequestError):
    code = "invalid_upload_device"
    default_message = "'upload_device' is not one of the accepted devices."


class WebhookRefused(RequestError):
    code = "webhook_url_refused"
    default_message = "The webhook_url is not an allowed http(s) address."


class AuthError(ExtractorError):
    code = "unauthorized"
    status = 401
    default_message = "A valid API key is required."


class JobNotFound(ExtractorError):
    code = "job_not_found"
    status = 404
    default_message = "Job not found"


class IdempotencyConflict(ExtractorError):
    code = "idempotency_conflict"
    status = 409
    default_message = (
        "This Idempotency-Key was already used with a different file or options; use a new key."
    )


class JobExpired(ExtractorError):
    code = "job_expired"
    status = 410
    default_message = "This job has expired and its result was deleted; please resubmit."


class PayloadTooLarge(ExtractorError):
    code = "file_too_large"
    status = 413
    default_message = "The upload is larger than this service accepts."


class TooLargeToScan(PayloadTooLarge):
    code = "too_large_for_scanner"
    default_message = "The file is larger than the virus scanner accepts."


class ServiceUnavailable(ExtractorError):
    code = "service_unavailable"
    status = 503
    default_message = "The service is temporarily unavailable. Please retry shortly."
    retry_after = 5


class JobStoreUnavailable(ServiceUnavailable):
    code = "job_store_unavailable"
    default_message = "The job store is unreachable right now. Please retry shortly."


class AntivirusUnavailable(ServiceUnavailable):
    code = "antivirus_unavailable"
    default_message = "The virus scanner is unreachable right now. Please retry shortly."


class NotReady(ServiceUnavailable):
    code = "not_ready"
    default_message = "The service is not ready to take work."


class Busy(ServiceUnavailable):
    code = "busy"
    status = 429
    default_message = "The service is busy with other PDFs; retry after the given seconds."
    retry_after = 10


class ShuttingDown(Busy):
    status = 503
    default_message = "This server is restarting and takes no new jobs; retry shortly."
    retry_after = 5


class SyncTimeout(ExtractorError):
    code = "sync_timeout"
    status = 504
    default_message = (
        "Extraction is taking longer than this request may wait; poll the job instead."
    )


class ExtractionError(ExtractorError):
    """A job's failure outcome: stored on the job, and 422 on the synchronous routes."""

    code = "extraction_failed"
    status = 422
    default_message = "The PDF could not be extracted."


class PasswordRequired(ExtractionError):
    code = "password_required"
    default_message = "The PDF is encrypted: send its password in the 'password' field."


class WrongPassword(ExtractionError):
    code = "wrong_password"
    default_message = "The password does not open this PDF."


class CorruptPdf(ExtractionError):
    code = "corrupt_pdf"
    default_message = "The file is damaged and cannot be opened as a PDF."


class TooManyPages(ExtractionError):
    code = "too_many_pages"
    default_message = "The PDF has more pages than this service accepts."


class InvalidPages(ExtractionError):
    code = "invalid_pages"
    default_message = "The requested pages are not in this document."


class NoText(ExtractionError):
    code = "no_pages"
    default_message = "The PDF has no pages."


class NoTextLayer(ExtractionError):
    code = "no_text_layer"
    default_message = (
        "No selected page has a text layer (scanned or image-only PDF); OCR is not applied yet."
    )


class ParserCrash(ExtractionError):
    code = "parser_crash"
    default_message = "The PDF parser failed on this file."


class ExtractTimeout(ExtractionError):
    code = "timeout"
    default_message = "Extraction took longer than the time allowed for this document."


class Stalled(ExtractionError):
    code = "stalled"
    default_message = "Extraction stopped making progress and was stopped."


class MemoryLimit(ExtractionError):
    code = "memory_limit"
    default_message = "The PDF needs more memory than this service allows for one document."


class Cancelled(ExtractionError):
    code = "cancelled"
    default_message = "The job was cancelled."


class WorkerLost(ExtractionError):
    code = "worker_lost"
    default_message = "The server running this job stopped before it finished; please resubmit."


class PdfFeatureRejected(ExtractionError):
    code = "pdf_feature_rejected"
    default_message = "The PDF contains a feature this service refuses (PDF_REJECT_FEATURES)."


class DangerousContent(ExtractionError):
    code = "dangerous_content"
    default_message = "The PDF contains text that looks like an injection attack."


class MalwareDetected(ExtractionError):
    code = "malware_detected"

    def __init__(self, signature: str | None = None) -> None:
        super().__init__(
            f"The file was rejected: the virus scanner found {signature or 'malware'}.",
            signature=signature,
        )
        self.signature = signature


EXTRACTION_ERRORS: dict[str, type[ExtractionError]] = {
    cls.code: cls
    for cls in (
        PasswordRequired,
        WrongPassword,
        CorruptPdf,
        TooManyPages,
        InvalidPages,
        NoText,
        NoTextLayer,
        ParserCrash,
        ExtractTimeout,
        Stalled,
        MemoryLimit,
        Cancelled,
        WorkerLost,
        PdfFeatureRejected,
        DangerousContent,
        MalwareDetected,
    )
}


def extraction_error(code: str, message: str | None = None) -> ExtractionError:
    """Build the extraction error for a stable code (unknown codes become parser_crash)."""
    cls = EXTRACTION_ERRORS.get(code, ParserCrash)
    return cls(message)
