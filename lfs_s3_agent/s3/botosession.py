"""The botocore session every client is built from, with a data loader that reads only what we use.

Building the first S3 client of a process is on the path to a cold worker's first byte (issue 15).
botocore's stock loader spends most of that time on two things our clients never need:

- ``list_available_services`` lists every service directory botocore ships (about 420, a
  ``listdir`` and a stat each) to check that ``s3`` is one of them, once per model type: 30-38 ms
  on the 2-core VM the benchmarks run on. Here the services this product builds clients for are
  looked up in their own directories (botocore's ``list_api_versions``); a model of any other
  service (botocore's credential providers build ``sso``, ``signin``... clients) switches the
  loader back to botocore's full listing.
- ``JSONFileLoader`` parses each model with ``object_pairs_hook=OrderedDict``, which costs about
  twice a plain ``json.loads`` (endpoints.json: 39 against 17 ms; s3's service-2: 13 against 8 ms);
  a plain dict keeps the same order (Python 3.7+) and botocore reads these as mappings.

Measured on that VM (median of 9 fresh processes each, interleaved): ``create_client("s3")`` 122 ms
with the stock loader, 68 ms with this one. Everything else stays botocore's: its search path (and the
``data_path`` setting / ``AWS_DATA_PATH`` it honours), the API version it picks, its extras
processing and its errors (``UnknownServiceError`` for a service not listed here).
"""

from __future__ import annotations

import gzip
import json
import os
from typing import Any

#: The services this product builds clients for (``s3`` for every store and source, ``sts`` for doctor).
SERVICES = ("s3", "sts")


def new_session(profile: str | None = None) -> Any:
    """A ``botocore.session.Session`` for ``profile`` whose data loader is ``loader_for(session)``."""
    import botocore.session

    session = botocore.session.Session(profile=profile)
    session.register_component("data_loader", loader_for(session))
    return session


def loader_for(session: Any) -> Any:
    """The loader botocore would make for ``session`` (same search path), restricted to ``SERVICES``."""
    from botocore import loaders
    from botocore.exceptions import DataNotFoundError

    class JSONFiles(loaders.JSONFileLoader):
        def load_file(self, file_path: str) -> Any:
            # The same files, in the same order, as botocore's JSONFileLoader (.json, then .json.gz).
            for ext, opener in ((".json", open), (".json.gz", gzip.open)):
                try:
                    with opener(file_path + ext, "rb") as fp:
                        payload = fp.read()
                except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                    continue
                return json.loads(payload)
            return super().load_file(file_path)  # any format a later botocore adds

    class Loader(loaders.Loader):
        everything = False  #: set once a client of another service is built (the credential chain's sso, signin...)

        def load_service_model(self, service_name: str, type_name: str, api_version: str | None = None) -> Any:
            if service_name not in SERVICES:
                self.everything = True
            return super().load_service_model(service_name, type_name, api_version)

        def list_available_services(self, type_name: str) -> list[str]:
            if self.everything:
                return list(super().list_available_services(type_name))
            found = []
            for name in SERVICES:
                try:
                    self.list_api_versions(name, type_name)
                except DataNotFoundError:
                    continue
                found.append(name)
            return found

    search_path = session.get_config_variable("data_path")  # as botocore.session does
    paths = None if search_path is None else [os.path.expanduser(os.path.expandvars(p))
                                              for p in search_path.split(os.pathsep)]
    return Loader(extra_search_paths=paths, file_loader=JSONFiles())
