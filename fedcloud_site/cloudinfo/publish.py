"""Publishing the GLUE 2.1 JSON to ARGO AMS (optional, ``cloudinfo.ams``).

The rendered ``cloudinfo.json`` goes as one message (base64 data, no attributes, as
cloud-info-provider's AMS publisher sent it) to ``cloudinfo.ams.topic`` of
``cloudinfo.ams.project``.  The shared client (:mod:`fedcloud_site.ams`) refuses a
message over the AMS size limit before sending anything; the BDII cache is written
either way.
"""

from __future__ import annotations

from pathlib import Path
from typing import Union

from ..ams import AmsClient, AmsMessage
from .settings import Settings


def ams_client(settings: Settings) -> AmsClient:
    """An AMS client for ``cloudinfo.ams`` (token, or the host certificate exchanged for one)."""
    ams = settings.ams
    verify: Union[bool, str] = str(ams.cacert) if ams.cacert is not None else True
    if ams.token:
        return AmsClient(ams.host, ams.project, token=str(ams.token), port=ams.port, verify=verify,
                         timeout=float(ams.timeout), retries=ams.retries)
    return AmsClient(ams.host, ams.project, cert=str(ams.certificate), key=str(ams.key), port=ams.port,
                     auth_url=ams.auth_url, verify=verify, timeout=float(ams.timeout), retries=ams.retries)


def publish_json(settings: Settings, json_path: Path) -> str:
    """Publish the cached JSON document; returns the AMS message id.  Raises :class:`~fedcloud_site.ams.AmsError`."""
    topic = settings.ams.topic
    if not topic:
        raise ValueError("cloudinfo.ams.topic is not set")
    data = json_path.read_bytes()  # one AMS message holds the whole document
    client = ams_client(settings)
    [message_id] = client.publish(topic, [AmsMessage(data=data)])
    return message_id
