"""The session's data loader reads what botocore's would, for s3, sts and any other service."""

from __future__ import annotations

from pathlib import Path

import botocore.session
import pytest

from lfs_s3_agent.s3.botosession import new_session


def stock_loader() -> object:
    return botocore.session.Session().get_component("data_loader")


@pytest.mark.parametrize(("service", "type_name"), [("s3", "service-2"), ("s3", "endpoint-rule-set-1"),
                                                    ("sts", "service-2")])
def test_models_are_botocores(service: str, type_name: str) -> None:
    ours = new_session().get_component("data_loader")
    assert ours.load_service_model(service, type_name) == stock_loader().load_service_model(service, type_name)  # type: ignore[attr-defined]


def test_data_files_are_botocores() -> None:
    ours = new_session().get_component("data_loader")
    for name in ("endpoints", "partitions", "sdk-default-configuration", "_retry"):
        assert ours.load_data(name) == stock_loader().load_data(name)  # type: ignore[attr-defined]


def test_only_our_services_are_listed_until_another_is_asked_for() -> None:
    loader = new_session().get_component("data_loader")
    assert loader.list_available_services("service-2") == ["s3", "sts"]
    # botocore's credential providers build clients of other services (sso, signin...): they still load.
    assert loader.load_service_model("sso", "service-2") == stock_loader().load_service_model("sso", "service-2")  # type: ignore[attr-defined]
    assert len(loader.list_available_services("service-2")) > 100


def test_clients_of_other_services_can_be_built() -> None:
    client = new_session().create_client("sso", region_name="us-east-1", aws_access_key_id="a",
                                         aws_secret_access_key="b")
    assert client.meta.service_model.service_name == "sso"


def test_the_data_path_setting_is_honoured(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # AWS_DATA_PATH (or data_path in the AWS config) adds model directories ahead of botocore's own.
    model = tmp_path / "s3" / "2006-03-01" / "service-2.json"
    model.parent.mkdir(parents=True)
    model.write_text('{"version": "2.0", "metadata": {"apiVersion": "2006-03-01", "endpointPrefix": "s3", '
                     '"protocol": "rest-xml", "serviceId": "S3", "signatureVersion": "s3v4"}, '
                     '"operations": {}, "shapes": {}, "documentation": "from the data path"}')
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    loaded = new_session().get_component("data_loader").load_service_model("s3", "service-2")
    assert loaded["documentation"] == "from the data path"
