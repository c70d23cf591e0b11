"""vmcatcher-compatible event hooks: site scripts written for ``vmcatcher_cache -x`` keep working.

Each configured command runs through ``/bin/sh -c`` with ``VMCATCHER_EVENT_TYPE`` and the
``VMCATCHER_EVENT_<KEY>`` variables of the image (``DC_IDENTIFIER``, ``DC_TITLE``, ``HV_URI``, ``AD_MPURI``,
``SL_CHECKSUM_SHA512``, ``FILENAME``, ``VO``, ...), plus ``FEDCLOUD_SITE_IMAGE_ID`` (the cloud's image id)
and ``FEDCLOUD_SITE_SUBSCRIPTION``. It is killed after its timeout (default 10 s, as vmcatcher). A failing
hook is logged and never stops the sync.

Events: ``ProcessPrefix``/``ProcessPostfix`` around a sync run, ``SubscriptionImageNew`` when a list brings
an image identifier not seen before, ``AvailablePrefix``/``AvailablePostfix`` around registering an image
version, ``ExpirePrefix``/``ExpirePostfix`` around retiring one (``ExpirePostfix`` as vmcatcher's code sends
it; the README's ``ExpirePosfix`` spelling is not sent).
"""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from typing import Any, Dict, Mapping, Optional, Sequence

from .settings import Hook

#: image-list key -> VMCATCHER_EVENT_<name>
_IMAGE_KEYS = {
    "dc:description": "DC_DESCRIPTION", "dc:identifier": "DC_IDENTIFIER", "dc:title": "DC_TITLE",
    "hv:hypervisor": "HV_HYPERVISOR", "hv:size": "HV_SIZE", "hv:uri": "HV_URI", "hv:version": "HV_VERSION",
    "hv:format": "HV_FORMAT", "sl:arch": "SL_ARCH", "sl:checksum:sha512": "SL_CHECKSUM_SHA512",
    "sl:comments": "SL_COMMENTS", "sl:os": "SL_OS", "sl:osname": "SL_OSNAME", "sl:osversion": "SL_OSVERSION",
    "ad:mpuri": "AD_MPURI",
}

SESSION = str(uuid.uuid4())


def event_environment(event: str, entry: Optional[Mapping[str, Any]] = None, *, list_identifier: str = "",
                      filename: str = "", vo: str = "", image_id: str = "", subscription: str = "") -> Dict[str, str]:
    """The ``VMCATCHER_EVENT_*`` variables of one event (``entry``: the raw ``hv:image`` mapping)."""
    env = {"VMCATCHER_EVENT_TYPE": event, "VMCATCHER_EVENT_UUID_SESSION": SESSION}
    for key, name in _IMAGE_KEYS.items():
        value = (entry or {}).get(key)
        if isinstance(value, (str, int)) and not isinstance(value, bool) and _fits_environment(str(value)):
            env[f"VMCATCHER_EVENT_{name}"] = str(value)
    if list_identifier:
        env["VMCATCHER_EVENT_IL_DC_IDENTIFIER"] = list_identifier
    if filename:
        env["VMCATCHER_EVENT_FILENAME"] = filename
    if vo:
        env["VMCATCHER_EVENT_VO"] = vo
    if image_id:
        env["FEDCLOUD_SITE_IMAGE_ID"] = image_id
    if subscription:
        env["FEDCLOUD_SITE_SUBSCRIPTION"] = subscription
    return env


def _fits_environment(value: str) -> bool:
    """An environment value cannot hold NUL (nor a lone surrogate, which has no bytes)."""
    return "\x00" not in value and not any("\ud800" <= c <= "\udfff" for c in value)


def run_hooks(hooks: Sequence[Hook], event: str, variables: Mapping[str, str], log: Any) -> int:
    """Run the hooks that want ``event``; returns how many failed."""
    failed = 0
    for hook in hooks:
        if hook.events and event not in hook.events:
            continue
        env = dict(os.environ)
        env.update(variables)
        try:
            process = subprocess.Popen(["/bin/sh", "-c", hook.command], env=env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        except (OSError, ValueError) as exc:  # ValueError: a value the environment cannot carry
            failed += 1
            log.warning("hook could not run", hook=hook.command, hook_event=event, error=str(exc))
            continue
        try:
            _, stderr = process.communicate(timeout=float(hook.timeout))
        except subprocess.TimeoutExpired:
            _kill_group(process)
            failed += 1
            log.warning("hook killed after timeout", hook=hook.command, hook_event=event, timeout=float(hook.timeout))
            continue
        if process.returncode != 0:
            failed += 1
            log.warning("hook failed", hook=hook.command, hook_event=event, status=process.returncode,
                        stderr=stderr.decode("utf-8", "replace").strip()[-500:])
    return failed


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill the hook and everything it started (it runs in its own session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.communicate()
