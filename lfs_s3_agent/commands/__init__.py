"""One module per command family; each command is a library function that returns a report.

``install`` (install, uninstall, clone, config), ``link`` (link, add-checksum, checkout),
``verify``, ``gc``, ``inventory`` (ls, du), ``copy``, ``doctor``, ``prepush`` (the pre-push
step), ``worker`` (status, stop). Reports have ``render()`` and ``to_json()``; the CLI only
parses arguments, calls one of these and prints (``cli.emit``). Commands build what they need
through ``wiring.build``, the composition root.
"""
