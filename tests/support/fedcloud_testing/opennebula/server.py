"""An OpenNebula XML-RPC endpoint (``/RPC2``) over a :class:`~.model.SimCloud`.

Answers are the arrays oned sends: ``[True, value, 0]`` on success and
``[False, message, error code, object id, replication index]`` on failure, with
the messages and codes of ``Request::failure_message``.  The session
(``user:password``) is checked on every call.  Pool paging follows
``PoolSQL``: ``start_id``/``end_id`` select an id range, and a negative
``end_id`` below -1 makes ``start_id`` an offset and ``-end_id`` the page size
(``LIMIT start, -end``).  Calls are counted per method, and faults can be
injected per method: OpenNebula error answers, HTTP errors, delays, dropped
connections and truncated answers.  Listens on loopback only.
"""

from __future__ import annotations

import os
import time
import xmlrpc.client
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Type
from xml.sax.saxutils import escape

from pyone import IMAGE_STATES, VM_STATE

from fedcloud_site.demo.http import FaultingServer, LoopbackHandler

from . import render
from .model import OWNER_ONLY, SimCloud, SimGroup, SimImage, SimTemplate, SimUser, SimVM
from .templates import Template, TemplateSyntaxError, merge, parse, vectors

# Request::ErrorCode
SUCCESS = 0x0000
AUTHENTICATION = 0x0100
AUTHORIZATION = 0x0200
NO_EXISTS = 0x0400
ACTION = 0x0800
XML_RPC_API = 0x1000
INTERNAL = 0x2000
ALLOCATE = 0x4000
LOCKED = 0x8000

#: PoolObjectSQL::INVALID_NAME_CHARS and the name length limit
INVALID_NAME_CHARS = "&|:\\\";/'#{}$<>"
MAX_NAME_LENGTH = 128

_DONE = int(VM_STATE.DONE.value)
_MAX_STATE = int(VM_STATE.CLONING_FAILURE.value)


class I8(int):
    """An XML-RPC ``<i8>`` value (oned sends the replication index as i8)."""


class OneError(Exception):
    """A failure answer: ``[False, message, code, resp_id, -1]``."""

    def __init__(self, code: int, message: str, resp_id: int = -1) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.resp_id = resp_id


@dataclass
class OneFault:
    """An injected failure for the next ``count`` calls of ``method`` (None: any method).

    kinds: ``error`` (an OpenNebula failure answer with ``code``/``message``),
    ``http`` (HTTP ``status`` with an HTML body), ``delay`` (sleep ``delay`` seconds,
    then answer), ``drop`` (close the connection without answering), ``truncate``
    (send half of the answer and close).
    """

    kind: str
    method: Optional[str] = None
    count: int = 1
    code: int = INTERNAL
    message: str = "Internal error"
    status: int = 503
    delay: float = 0.0


@dataclass
class Session:
    user: SimUser
    method: str
    admin: bool


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return f"<value><boolean>{int(v)}</boolean></value>"
    if isinstance(v, I8):
        return f"<value><i8>{int(v)}</i8></value>"
    if isinstance(v, int):
        return f"<value><i4>{v}</i4></value>"
    return f"<value><string>{escape(str(v))}</string></value>"


def response_body(values: Sequence[Any]) -> bytes:
    """An XML-RPC methodResponse holding one array, written as xmlrpc-c does."""
    inner = "\r\n".join(_value(v) for v in values)
    return ('<?xml version="1.0" encoding="UTF-8"?>\r\n<methodResponse>\r\n<params>\r\n<param><value><array><data>\r\n'
            f"{inner}\r\n</data></array></value></param>\r\n</params>\r\n</methodResponse>\r\n").encode()


def fault_body(code: int, message: str) -> bytes:
    return xmlrpc.client.dumps(xmlrpc.client.Fault(code, message), methodresponse=True).encode("utf-8")


OBJECT_NAMES = {"vm": "virtual machine", "vmpool": "virtual machine", "image": "image", "imagepool": "image",
                "user": "user", "userpool": "user", "group": "group", "grouppool": "group",
                "template": "virtual machine template", "templatepool": "virtual machine template",
                "host": "host", "hostpool": "host", "cluster": "cluster", "clusterpool": "cluster",
                "datastore": "datastore", "datastorepool": "datastore", "system": "system"}


class OpenNebulaSimulator(FaultingServer[OneFault]):
    """The XML-RPC server: ``start()``, then point pyone at :attr:`url` with ``user:password``."""

    thread_name = "one-sim"

    def __init__(self, cloud: Optional[SimCloud] = None, username: str = "oneadmin", password: str = "opennebula",
                 host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        self.cloud = cloud if cloud is not None else SimCloud()
        self.calls: Counter[str] = Counter()
        self.image_copy_seconds = 0.0  # how long an allocated image stays LOCKED (wall clock)
        #: how many reads of it (``one.image.info``, pool listings) an allocated image stays LOCKED for, at
        #: least: a copy that lasts a known number of polls, however slowly a loaded machine makes them
        self.image_copy_reads = 0
        #: ``API_LIST_ORDER`` of oned.conf: pools in ascending (ASC) or descending (DESC) id order
        self.list_order = "ASC"
        #: called as ``hook(method, params)`` before each call is answered (tests change the cloud mid-listing)
        self.before_call: Optional[Callable[[str, Sequence[Any]], None]] = None
        self._methods: Dict[str, Callable[..., Any]] = {}
        self._register()
        if not any(u.name == username for u in self.cloud.users.values()):
            from .dataset import ensure_admin

            ensure_admin(self.cloud, username, password)

    # -- control ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return super().url + "/RPC2"

    def fault_target(self, fault: OneFault) -> Optional[str]:
        return fault.method

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    # -- dispatch --------------------------------------------------------------------------
    def call(self, method: str, params: Sequence[Any]) -> List[Any]:
        """Run one API call; the answer array (success or failure)."""
        if self.before_call is not None:
            self.before_call(method, params)
        handler = self._methods.get(method)
        if handler is None:
            raise xmlrpc.client.Fault(-506, f"Method '{method}' not defined")
        try:
            if not params or not isinstance(params[0], str):
                raise xmlrpc.client.Fault(-501, "Type mismatch: session string expected")
            session = self._authenticate(method, params[0])
            with self.cloud.lock:
                value = handler(session, *params[1:])
        except OneError as err:
            return [False, err.message, err.code, err.resp_id, I8(-1)]
        except TypeError as exc:
            raise xmlrpc.client.Fault(-501, f"Type mismatch or wrong number of parameters: {exc}") from None
        except Exception:  # noqa: BLE001 - like oned, answer rather than drop the connection
            return [False, f"[{method}] Internal error", INTERNAL, -1, I8(-1)]
        return [True, value, SUCCESS]

    def _authenticate(self, method: str, session: str) -> Session:
        name, _, password = session.partition(":")
        for user in self.cloud.users.values():
            if user.name == name and user.password == password and user.enabled and user.auth_driver == "core":
                return Session(user, method, 0 in user.groups)
        raise OneError(AUTHENTICATION, f"[{method}] User couldn't be authenticated, aborting call.")

    @staticmethod
    def _obj(method: str) -> str:
        return OBJECT_NAMES.get(method.split(".")[1], "object")

    def _missing(self, s: Session, oid: int) -> OneError:
        return OneError(NO_EXISTS, f"[{s.method}] Error getting {self._obj(s.method)} [{oid}].", oid)

    def _need_admin(self, s: Session, oid: int = -1) -> None:
        if not s.admin:
            raise OneError(AUTHORIZATION, f"[{s.method}] User [{s.user.id}] not authorized to perform action on "
                                          f"{self._obj(s.method)}.", oid)

    def _template(self, s: Session, text: str) -> Template:
        try:
            return parse(text)
        except TemplateSyntaxError as exc:
            raise OneError(ACTION if not s.method.endswith("allocate") else ALLOCATE,
                           f"[{s.method}] Parse error: {exc}") from None

    @staticmethod
    def _name_error(name: str) -> Optional[str]:
        """``PoolObjectSQL::name_is_valid``: why oned refuses ``name``, or None."""
        if not name:
            return "Invalid NAME, it cannot be empty"
        bad = next((c for c in name if c in INVALID_NAME_CHARS), None)
        if bad is not None:
            return f"Invalid NAME, char '{bad}' is not allowed"
        if len(name) > MAX_NAME_LENGTH:
            return f"Invalid NAME, max length is {MAX_NAME_LENGTH} chars"
        return None

    def _check_rename(self, s: Session, oid: int, name: str, taken_by: Iterable[Any], kind: str) -> None:
        problem = self._name_error(name)
        if problem:
            raise OneError(ACTION, f"[{s.method}] {problem}.", oid)
        clash = next((o for o in taken_by if o.name == name and o.id != oid), None)
        if clash is not None:
            raise OneError(ACTION, f"[{s.method}] NAME is already taken by {kind} {clash.id}.", oid)

    def _chown(self, s: Session, record: Any, uid: int, gid: int) -> None:
        """``one.<object>.chown``: a new owner and/or group (-1 keeps it)."""
        if uid != -1:
            if uid not in self.cloud.users:
                raise OneError(NO_EXISTS, f"[{s.method}] Error getting user [{uid}].", uid)
            record.uid = uid
        if gid != -1:
            if gid not in self.cloud.groups:
                raise OneError(NO_EXISTS, f"[{s.method}] Error getting group [{gid}].", gid)
            record.gid = gid

    @staticmethod
    def _chmod(record: Any, bits: Sequence[int]) -> None:
        """``one.<object>.chmod``: the 9 permission bits, -1 keeping the current one."""
        record.permissions = tuple(old if new == -1 else new for old, new in zip(record.permissions, bits))

    # -- pools -----------------------------------------------------------------------------
    def _visible(self, s: Session, flag: int, uid: int, gid: int, perms: Sequence[int]) -> bool:
        me = s.user
        if flag < -4:
            raise OneError(XML_RPC_API, f"[{s.method}] Incorrect filter_flag")
        if flag == -3:
            return uid == me.id
        if flag == -4:
            return gid == me.gid and (s.admin or perms[6] == 1 or uid == me.id or perms[3] == 1)
        if flag == -1:
            return uid == me.id or (gid in me.groups and (s.admin or perms[6] == 1 or perms[3] == 1))
        if flag == -2:
            return s.admin or uid == me.id or perms[6] == 1 or (gid in me.groups and perms[3] == 1)
        return uid == flag

    @staticmethod
    def _page(items: List[Any], start: int, end: int) -> List[Any]:
        """``PoolSQL::oid_filter`` + ``LIMIT``: id range, or offset/size when ``end < -1``."""
        if end < -1:
            offset = max(start, 0)
            return items[offset:offset - end]
        if start != -1:
            return [o for o in items if o.id >= start and (end == -1 or o.id <= end)]
        return items

    def _vm_pool(self, s: Session, flag: int, start: int, end: int, state: int, extended: bool,
                 query: str = "") -> str:
        if state < -2 or state > _MAX_STATE:
            raise OneError(XML_RPC_API, f"[{s.method}] Incorrect state filter {state}")
        vms = self.cloud.vms
        chosen = []
        for vm_id in self.cloud.sorted_vm_ids():
            vm = vms[vm_id]
            if state == -1 and vm.state == _DONE or state >= 0 and vm.state != state:
                continue
            if not self._visible(s, flag, vm.uid, vm.gid, vm.permissions):
                continue
            if query and not _matches(vm, query):
                continue
            chosen.append(vm)
        if self.list_order == "DESC":
            chosen.reverse()
        return render.vm_pool(self._page(chosen, start, end), extended)

    def _register(self) -> None:
        m = self._methods
        cloud = self.cloud

        # system
        m["one.system.version"] = lambda s: cloud.version
        m["one.system.config"] = lambda s: render.system_config(cloud, self.list_order)

        # VMs
        def vmpool_info(s: Session, flag: int, start: int, end: int, state: int, query: str = "") -> str:
            return self._vm_pool(s, flag, start, end, state, False, query)

        def vmpool_infoextended(s: Session, flag: int, start: int, end: int, state: int, query: str = "") -> str:
            return self._vm_pool(s, flag, start, end, state, True, query)

        def vm_info(s: Session, oid: int, decrypt: bool = False) -> str:
            vm = cloud.vms.get(oid)
            if vm is None or not self._visible(s, -2, vm.uid, vm.gid, vm.permissions):
                raise self._missing(s, oid)
            return render.cached_vm(vm, "info")

        def vmpool_accounting(s: Session, flag: int, time_start: int, time_end: int) -> str:
            records = []
            for vm_id in cloud.sorted_vm_ids():
                vm = cloud.vms[vm_id]
                if not self._visible(s, flag, vm.uid, vm.gid, vm.permissions):
                    continue
                for h in vm.history:
                    if time_start != -1 and not (h.etime > time_start or h.etime == 0):
                        continue
                    if time_end != -1 and not h.stime < time_end:
                        continue
                    records.append((vm, h))
            return render.accounting(records)

        m["one.vmpool.info"] = vmpool_info
        m["one.vmpool.infoextended"] = vmpool_infoextended
        m["one.vm.info"] = vm_info
        m["one.vmpool.accounting"] = vmpool_accounting

        # images
        def imagepool_info(s: Session, flag: int, start: int, end: int) -> str:
            items = [cloud.images[i] for i in sorted(cloud.images)
                     if self._visible(s, flag, cloud.images[i].uid, cloud.images[i].gid, cloud.images[i].permissions)]
            for image in items:
                self._settle_image(image)
            return render.image_pool(cloud, self._page(items, start, end))

        def get_image(s: Session, oid: int) -> SimImage:
            image = cloud.images.get(oid)
            if image is None:
                raise self._missing(s, oid)
            self._settle_image(image)
            return image

        def image_info(s: Session, oid: int, decrypt: bool = False) -> str:
            return render.image(cloud, get_image(s, oid))

        def image_allocate(s: Session, text: str, ds_id: int, skip_capacity_check: bool = False) -> int:
            tmpl = self._template(s, text)
            ds = cloud.datastores.get(ds_id)
            if ds is None:
                raise OneError(NO_EXISTS, f"[{s.method}] Error getting datastore [{ds_id}].", ds_id)
            if ds.type != 0:
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new image. "
                                         "Can not use a SYSTEM or FILE datastore to register an image.")
            name = str(tmpl.pop("NAME", "") or "")
            if not name:
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new image. No NAME in template.")
            if self._name_error(name):
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new image. {self._name_error(name)}.")
            if any(i.name == name and i.uid == s.user.id for i in cloud.images.values()):
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new image. NAME is already taken by "
                                         f"IMAGE {next(i.id for i in cloud.images.values() if i.name == name)}.")
            path = str(tmpl.pop("PATH", "") or "")
            size_mb = tmpl.pop("SIZE", None)
            if path:
                try:
                    size = os.stat(path).st_size
                except OSError:
                    raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new image. Cannot determine "
                                             f"size for {path}") from None
                size_mb = (size + (1 << 20) - 1) >> 20
            elif size_mb is None:
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new image. No PATH in template.")
            kinds = ("OS", "CDROM", "DATABLOCK", "KERNEL", "RAMDISK", "CONTEXT")
            kind = str(tmpl.pop("TYPE", "OS")).upper()
            image_id = cloud.next_id(cloud.images)
            fmt = str(tmpl.get("FORMAT") or tmpl.get("DRIVER") or "raw")
            image = SimImage(id=image_id, uid=s.user.id, gid=s.user.gid, name=name, datastore_id=ds_id,
                             regtime=cloud.now(), type=kinds.index(kind) if kind in kinds else 0,
                             state=int(IMAGE_STATES.LOCKED), path=path,
                             source=f"{ds.base_path or '/var/lib/one/datastores/' + str(ds_id)}/{image_id:032x}",
                             format=fmt, size_mb=int(size_mb), persistent=int(str(tmpl.pop("PERSISTENT", "NO"))
                                                                               .upper() in ("YES", "1")),
                             template=tmpl, ready_at=time.time() + self.image_copy_seconds,
                             locked_reads=self.image_copy_reads)
            cloud.images[image_id] = image
            self._settle_image(image, read=False)
            return image_id

        def image_update(s: Session, oid: int, text: str, mode: int = 0) -> int:
            image = get_image(s, oid)
            tmpl = self._template(s, text)
            image.template = merge(image.template, tmpl) if mode == 1 else tmpl
            image.modtime = cloud.now()
            return oid

        def image_delete(s: Session, oid: int, force: bool = False) -> int:
            image = get_image(s, oid)
            if image.running_vms and not force:
                raise OneError(ACTION, f"[{s.method}] Cannot delete image [{oid}]: image is in use by "
                                       f"{image.running_vms} VMs.", oid)
            del cloud.images[oid]
            return oid

        def image_enable(s: Session, oid: int, enable: bool) -> int:
            image = get_image(s, oid)
            ready, disabled, error = (int(IMAGE_STATES.READY), int(IMAGE_STATES.DISABLED),
                                      int(IMAGE_STATES.ERROR))
            allowed = (disabled, error, ready) if enable else (ready, error, disabled)
            if image.state not in allowed:
                raise OneError(ACTION, f"[{s.method}] Image cannot be in state "
                                       f"{IMAGE_STATES(image.state).name}.", oid)
            image.state = ready if enable else disabled
            return oid

        def image_chmod(s: Session, oid: int, *bits: int) -> int:
            image = get_image(s, oid)
            if len(bits) != 9:
                raise TypeError("chmod takes 9 permission values")
            self._chmod(image, bits)
            return oid

        def image_chown(s: Session, oid: int, uid: int, gid: int) -> int:
            self._chown(s, get_image(s, oid), uid, gid)
            return oid

        def image_rename(s: Session, oid: int, name: str) -> int:
            image = get_image(s, oid)
            if not name:
                raise OneError(ACTION, f"[{s.method}] New name cannot be empty.", oid)
            self._check_rename(s, oid, name, [i for i in cloud.images.values() if i.uid == image.uid], "IMAGE")
            image.name = name
            return oid

        m["one.imagepool.info"] = imagepool_info
        m["one.image.info"] = image_info
        m["one.image.allocate"] = image_allocate
        m["one.image.update"] = image_update
        m["one.image.delete"] = image_delete
        m["one.image.enable"] = image_enable
        m["one.image.chmod"] = image_chmod
        m["one.image.chown"] = image_chown
        m["one.image.rename"] = image_rename
        m["one.datastorepool.info"] = lambda s: render.datastore_pool(cloud)

        # VM templates
        def templatepool_info(s: Session, flag: int, start: int, end: int) -> str:
            items = [cloud.templates[i] for i in sorted(cloud.templates)
                     if self._visible(s, flag, cloud.templates[i].uid, cloud.templates[i].gid,
                                      cloud.templates[i].permissions)]
            return render.vmtemplate_pool(cloud, self._page(items, start, end))

        def get_template(s: Session, oid: int) -> SimTemplate:
            tmpl = cloud.templates.get(oid)
            if tmpl is None:
                raise self._missing(s, oid)
            return tmpl

        def template_info(s: Session, oid: int, extended: bool = False, decrypt: bool = False) -> str:
            return render.vmtemplate(cloud, get_template(s, oid))

        def template_allocate(s: Session, text: str) -> int:
            tmpl = self._template(s, text)
            name = str(tmpl.pop("NAME", "") or "")
            if not name:
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new virtual machine template. "
                                         "No NAME in template.")
            if self._name_error(name):
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new virtual machine template. "
                                         f"{self._name_error(name)}.")
            clash = next((t for t in cloud.templates.values() if t.name == name and t.uid == s.user.id), None)
            if clash is not None:
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new virtual machine template. "
                                         f"NAME is already taken by TEMPLATE {clash.id}.")
            oid = cloud.next_id(cloud.templates)
            cloud.templates[oid] = SimTemplate(id=oid, uid=s.user.id, gid=s.user.gid, name=name,
                                               regtime=cloud.now(), template=tmpl)
            return oid

        def template_update(s: Session, oid: int, text: str, mode: int = 0) -> int:
            tmpl = get_template(s, oid)
            new = self._template(s, text)
            tmpl.template = merge(tmpl.template, new) if mode == 1 else new
            return oid

        def template_delete(s: Session, oid: int, recursive: bool = False) -> int:
            tmpl = get_template(s, oid)
            if recursive:  # the images of its disks go too
                for disk in vectors(tmpl.template, "DISK"):
                    if str(disk.get("IMAGE_ID", "")).isdigit():
                        cloud.images.pop(int(disk["IMAGE_ID"]), None)
            del cloud.templates[oid]
            return oid

        def template_chmod(s: Session, oid: int, *bits: Any) -> int:
            tmpl = get_template(s, oid)
            if len(bits) not in (9, 10):
                raise TypeError("chmod takes 9 permission values (and optionally 'recursive')")
            if any(b not in (-1, 0, 1) for b in bits[:9]):
                raise OneError(ACTION, f"[{s.method}] New permission values must be -1, 0 or 1", oid)
            self._chmod(tmpl, bits[:9])
            return oid

        def template_chown(s: Session, oid: int, uid: int, gid: int) -> int:
            self._chown(s, get_template(s, oid), uid, gid)
            return oid

        def template_rename(s: Session, oid: int, name: str) -> int:
            tmpl = get_template(s, oid)
            self._check_rename(s, oid, name, [t for t in cloud.templates.values() if t.uid == tmpl.uid],
                               "TEMPLATE")
            tmpl.name = name
            return oid

        m["one.templatepool.info"] = templatepool_info
        m["one.template.info"] = template_info
        m["one.template.allocate"] = template_allocate
        m["one.template.update"] = template_update
        m["one.template.delete"] = template_delete
        m["one.template.chmod"] = template_chmod
        m["one.template.chown"] = template_chown
        m["one.template.rename"] = template_rename

        # users
        def get_user(s: Session, oid: int) -> SimUser:
            if oid == -1:
                return s.user
            user = cloud.users.get(oid)
            if user is None:
                raise self._missing(s, oid)
            return user

        def get_group(s: Session, gid: int) -> SimGroup:
            group = cloud.groups.get(gid)
            if group is None:
                raise OneError(NO_EXISTS, f"[{s.method}] Error getting group [{gid}].", gid)
            return group

        def user_allocate(s: Session, name: str, password: str, driver: str = "", groups: Sequence[int] = ()) \
                -> int:
            self._need_admin(s)
            if not name or any(c in name for c in " :\t\n"):
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new user. Invalid NAME, it cannot "
                                         "contain spaces or ':'.")
            if any(u.name == name for u in cloud.users.values()):
                other = next(u.id for u in cloud.users.values() if u.name == name)
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new user. NAME is already taken by "
                                         f"USER {other}.")
            if not password:
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new user. Invalid password, it cannot "
                                         "be empty.")
            group_ids = list(groups) or [1]
            for gid in group_ids:
                get_group(s, gid)
            oid = cloud.next_id(cloud.users)
            cloud.users[oid] = SimUser(id=oid, name=name, password=password, gid=group_ids[0],
                                       groups=sorted(set(group_ids)), auth_driver=driver or "core")
            return oid

        def user_update(s: Session, oid: int, text: str, mode: int = 0) -> int:
            user = get_user(s, oid)
            new = self._template(s, text)
            user.template = merge(user.template, new) if mode == 1 else new
            return oid

        def user_chgrp(s: Session, oid: int, gid: int) -> int:
            self._need_admin(s, oid)
            user = get_user(s, oid)
            get_group(s, gid)
            if gid not in user.groups:
                user.groups = sorted(set(user.groups) | {gid})
            user.gid = gid
            return oid

        def user_addgroup(s: Session, oid: int, gid: int) -> int:
            self._need_admin(s, oid)
            user = get_user(s, oid)
            get_group(s, gid)
            if gid in user.groups:
                raise OneError(ACTION, f"[{s.method}] User is already in this group", oid)
            user.groups = sorted(set(user.groups) | {gid})
            return oid

        def user_delgroup(s: Session, oid: int, gid: int) -> int:
            self._need_admin(s, oid)
            user = get_user(s, oid)
            get_group(s, gid)
            if gid == user.gid:
                raise OneError(ACTION, f"[{s.method}] Cannot remove user from the primary group", oid)
            if gid not in user.groups:
                raise OneError(ACTION, f"[{s.method}] User is not part of this group", oid)
            user.groups = [g for g in user.groups if g != gid]
            return oid

        def user_enable(s: Session, oid: int, enable: bool) -> int:
            self._need_admin(s, oid)
            get_user(s, oid).enabled = bool(enable)
            return oid

        def user_delete(s: Session, oid: int) -> int:
            self._need_admin(s, oid)
            user = get_user(s, oid)
            if user.id == 0:
                raise OneError(ACTION, f"[{s.method}] oneadmin cannot be deleted.", oid)
            del cloud.users[oid]
            return oid

        def user_chauth(s: Session, oid: int, driver: str, password: str) -> int:
            self._need_admin(s, oid)
            user = get_user(s, oid)
            if driver:
                user.auth_driver = driver
            if password:
                user.password = password
            return oid

        def user_quota(s: Session, oid: int, text: str) -> int:
            self._need_admin(s, oid)
            user = get_user(s, oid)
            user.quota = _quota_update(user.quota, self._template(s, text))
            return oid

        m["one.userpool.info"] = lambda s: render.user_pool(cloud)
        m["one.user.info"] = lambda s, oid, decrypt=False: render.user(cloud, get_user(s, oid))
        m["one.user.allocate"] = user_allocate
        m["one.user.update"] = user_update
        m["one.user.chgrp"] = user_chgrp
        m["one.user.addgroup"] = user_addgroup
        m["one.user.delgroup"] = user_delgroup
        m["one.user.enable"] = user_enable
        m["one.user.delete"] = user_delete
        m["one.user.chauth"] = user_chauth
        m["one.user.quota"] = user_quota

        # groups
        def group_info(s: Session, oid: int, decrypt: bool = False) -> str:
            if oid == -1:
                oid = s.user.gid
            group = cloud.groups.get(oid)
            if group is None:
                raise self._missing(s, oid)
            return render.group(cloud, group)

        def group_allocate(s: Session, name: str) -> int:
            self._need_admin(s)
            if any(g.name == name for g in cloud.groups.values()):
                other = next(g.id for g in cloud.groups.values() if g.name == name)
                raise OneError(ALLOCATE, f"[{s.method}] Error allocating a new group. NAME is already taken by "
                                         f"GROUP {other}.")
            oid = cloud.next_id(cloud.groups, floor=100)
            cloud.groups[oid] = SimGroup(id=oid, name=name)
            return oid

        def group_quota(s: Session, oid: int, text: str) -> int:
            self._need_admin(s, oid)
            group = cloud.groups.get(oid)
            if group is None:
                raise self._missing(s, oid)
            group.quota = _quota_update(group.quota, self._template(s, text))
            return oid

        m["one.grouppool.info"] = lambda s: render.group_pool(cloud)
        m["one.group.info"] = group_info
        m["one.group.allocate"] = group_allocate
        m["one.group.quota"] = group_quota

        # infrastructure
        m["one.hostpool.info"] = lambda s: render.host_pool(cloud)
        m["one.clusterpool.info"] = lambda s: render.cluster_pool(cloud)

    def _settle_image(self, image: SimImage, read: bool = True) -> None:
        """A LOCKED image (being copied into the datastore) turns READY once its copy time has passed and
        it was read as LOCKED as often as :attr:`image_copy_reads` said."""
        if image.state != int(IMAGE_STATES.LOCKED):
            return
        if read and image.locked_reads > 0:
            image.locked_reads -= 1
            return
        if image.locked_reads == 0 and time.time() >= image.ready_at:
            image.state = int(IMAGE_STATES.READY)

    # -- HTTP ------------------------------------------------------------------------------
    def handler_class(self) -> Type[BaseHTTPRequestHandler]:
        sim = self

        class _Handler(LoopbackHandler):
            wbufsize = 1 << 16  # headers and a small body leave in one segment

            def _send(self, status: int, body: bytes, content_type: str = "text/xml") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path.rstrip("/") != "/RPC2":
                    self._send(404, b"<html><body>Not Found</body></html>", "text/html")
                    return
                try:
                    params, method = xmlrpc.client.loads(body, use_builtin_types=True)
                except Exception:  # noqa: BLE001 - any malformed request body
                    self._send(200, fault_body(-503, "Call XML not a proper XML-RPC call"))
                    return
                method = method or ""
                with sim._lock:
                    sim.calls[method] += 1
                fault = sim._take_fault(method)
                if fault is not None and fault.kind == "drop":
                    self.cut_connection()
                    return
                if fault is not None and fault.kind == "http":
                    self._send(fault.status, f"<html><body>{fault.status} injected</body></html>".encode(),
                               "text/html")
                    return
                if fault is not None and fault.kind == "delay":
                    time.sleep(fault.delay)
                if fault is not None and fault.kind == "error":
                    payload = response_body([False, f"[{method}] {fault.message}", fault.code, -1, I8(-1)])
                else:
                    try:
                        payload = response_body(sim.call(method, params))
                    except xmlrpc.client.Fault as exc:
                        payload = fault_body(exc.faultCode, exc.faultString)
                if fault is not None and fault.kind == "truncate":
                    self.send_response(200)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.cut_connection()
                    return
                self._send(200, payload)

        return _Handler


def _matches(vm: SimVM, query: str) -> bool:
    """The ``KEY=VALUE&...`` search of ``one.vmpool.info`` (substring match on NAME or template values)."""
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if not _:
            key, value = "*", key
        key = key.split(".")[-1].upper()
        if key in ("*", "NAME") and value in vm.name:
            continue
        found = [v for k, v in vm.template.items() if isinstance(v, str) and (key == "*" or k == key)]
        if not any(value in v for v in found):
            return False
    return True


def _quota_update(current: Dict[str, str], tmpl: Template) -> Dict[str, str]:
    vm = tmpl.get("VM")
    if not isinstance(vm, dict):
        return current
    updated = dict(current)
    updated.update({k: v for k, v in vm.items() if k in render.VM_QUOTA_FIELDS})
    return updated


def iter_calls(counter: Counter[str], prefix: str) -> Iterable[Tuple[str, int]]:
    """(method, count) of the methods starting with ``prefix``."""
    return ((k, v) for k, v in sorted(counter.items()) if k.startswith(prefix))


__all__ = ["OpenNebulaSimulator", "OneFault", "OneError", "I8", "OWNER_ONLY", "AUTHENTICATION", "AUTHORIZATION",
           "NO_EXISTS", "ACTION", "XML_RPC_API", "INTERNAL", "ALLOCATE"]
