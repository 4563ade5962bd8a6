import pytest
from botocore import exceptions as bce

from lfs_s3_agent.errors import Code
from lfs_s3_agent.s3.errors import translate
from lfs_s3_agent.s3.keys import checksum_of, object_key

OID = "0123456789abcdef" * 4


def client_error(code: str, status: int = 400, message: str = "msg") -> bce.ClientError:
    return bce.ClientError({"Error": {"Code": code, "Message": message},
                            "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")


def test_key_layout_is_content_addressed() -> None:
    assert object_key("team/repo", OID) == f"team/repo/01/23/{OID}"
    assert object_key("", OID) == f"01/23/{OID}"


def test_checksum_header_is_base64_of_the_digest() -> None:
    assert checksum_of("00" * 31 + "ff") == "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP8="


@pytest.mark.parametrize(
    ("exc", "code", "fragment"),
    [
        (client_error("NoSuchBucket", 404), Code.NO_SUCH_BUCKET, "does not exist"),
        (client_error("AccessDenied", 403), Code.ACCESS_DENIED, "IAM policy"),
        (client_error("403", 403), Code.ACCESS_DENIED, "access denied"),
        (client_error("InvalidAccessKeyId", 403), Code.CREDENTIALS, "rejected the credentials"),
        (client_error("SignatureDoesNotMatch", 403), Code.CREDENTIALS, "AWS_SECRET_ACCESS_KEY"),
        (client_error("ExpiredToken", 400), Code.CREDENTIALS, "aws sso login"),
        (client_error("NoSuchKey", 404), Code.NOT_FOUND, "not found in the store"),
        (client_error("404", 404), Code.NOT_FOUND, "not found"),
        (client_error("InvalidObjectState", 403), Code.ARCHIVED, "restore"),
        (client_error("BadDigest", 400), Code.INTEGRITY, "corrupt"),
        (client_error("SlowDown", 503), Code.S3_ERROR, "SlowDown"),
        (client_error("PermanentRedirect", 301), Code.S3_ERROR, "--region"),
        (bce.NoCredentialsError(), Code.CREDENTIALS, "no AWS credentials"),
        (bce.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), Code.NETWORK, "cannot reach"),
        (bce.ReadTimeoutError(endpoint_url="http://x"), Code.TIMEOUT, "--timeout"),
        (bce.ConnectTimeoutError(endpoint_url="http://x"), Code.TIMEOUT, "did not answer"),
        (bce.ProfileNotFound(profile="nope"), Code.CREDENTIALS, "--profile"),
    ],
)
def test_translate_names_cause_and_fix(exc: Exception, code: Code, fragment: str) -> None:
    err = translate(exc, bucket="bkt", key="p/k", endpoint="http://e")
    assert err.code == code
    assert fragment in err.message


def test_transient_errors_are_marked() -> None:
    assert getattr(translate(client_error("SlowDown", 503), bucket="b"), "transient", False)
    assert getattr(translate(client_error("InternalError", 500), bucket="b"), "transient", False)
    assert not getattr(translate(client_error("AccessDenied", 403), bucket="b"), "transient", False)


def test_not_implemented_is_never_retried() -> None:
    # s3rver answers ListMultipartUploads with 501 NotImplemented: retried, it cost a multipart push 2-4 s.
    assert not translate(client_error("NotImplemented", 501), bucket="b").transient
    assert not translate(client_error("501", 501), bucket="b").transient
    assert translate(client_error("BadGateway", 502), bucket="b").transient
    # One rule for both readers (retry.transient_status): throttling and timeouts by status too.
    assert translate(client_error("TooManyRequests", 429), bucket="b").transient
    assert not translate(client_error("Forbidden", 403), bucket="b").transient


def test_not_implemented_from_a_public_url_is_not_retried_either() -> None:
    """Review: the public-URL reader (s3/public.py status_error) still retries any status >= 500, 501 too."""
    from lfs_s3_agent.s3.public import status_error

    class Resp:
        status = 501

        def read(self, *args: object, **kwargs: object) -> bytes:
            return b"<Error><Code>NotImplemented</Code></Error>"

        def release_conn(self) -> None:
            pass

    assert not status_error(Resp(), "https://example.invalid/x").transient
