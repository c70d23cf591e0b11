"""The narrow roles the daemons use a cloud backend in.

:class:`~.base.CloudBackend` is the whole interface a backend implements; each daemon needs only a slice
of it.  These protocols name those slices, so a daemon's code can say which one it depends on and a
backend author can see what each daemon will call.  Which slices a backend can really serve is its
:class:`~.base.BackendDeclaration` (the capability next to each role below).

=================  ===========================  ==========================================
role               used by                      capability a configuration needs
=================  ===========================  ==========================================
UsageSource        accounting                   ``usage`` (records of ``volumes``, ``floating_ips``)
InfoSource         cloudinfo                    none (GLUE facts or ``cloudinfo.middleware``)
ImageStore         images                       ``image_write`` (``templates``, ``datastores``)
UserDirectory      perun                        ``users``
=================  ===========================  ==========================================
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, BinaryIO, Iterator, Mapping, Optional, Protocol, Tuple

from .base import (
    VM,
    BackendDeclaration,
    Capacity,
    Flavor,
    FloatingIP,
    Group,
    Image,
    ImageSpec,
    Project,
    Quota,
    TemplateSpec,
    User,
    UserSpec,
    VMTemplate,
    Volume,
)


class Declared(Protocol):
    """Every role: the backend's name and declaration."""

    name: str

    @property
    def declaration(self) -> BackendDeclaration: ...


class UsageSource(Declared, Protocol):
    """What the accounting extractor reads: projects, VMs alive in a window, IPs and volumes."""

    filters_vms_by_project: bool

    def list_projects(self) -> Iterator[Project]: ...

    def list_flavors(self) -> Iterator[Flavor]: ...

    def list_images(self, owner: Optional[str] = None) -> Iterator[Image]: ...

    def list_vms(self, project_id: Optional[str] = None,
                 active_since: Optional[datetime] = None) -> Iterator[VM]: ...

    def list_floating_ips(self, project_id: Optional[str] = None) -> Iterator[FloatingIP]: ...

    def list_volumes(self, project_id: Optional[str] = None,
                     active_since: Optional[datetime] = None) -> Iterator[Volume]: ...

    def list_users(self) -> Iterator[User]: ...


class InfoSource(Declared, Protocol):
    """What the cloud information provider publishes: projects, flavours, images, capacity, quotas."""

    def list_projects(self) -> Iterator[Project]: ...

    def list_flavors(self) -> Iterator[Flavor]: ...

    def list_images(self, owner: Optional[str] = None) -> Iterator[Image]: ...

    def list_vms(self, project_id: Optional[str] = None,
                 active_since: Optional[datetime] = None) -> Iterator[VM]: ...

    def capacity(self) -> Capacity: ...

    def quota(self, project_id: str) -> Quota: ...


class ImageStore(Declared, Protocol):
    """What the image-list subscriber writes: images (and VM templates where the cloud has them)."""

    def list_projects(self) -> Iterator[Project]: ...

    def list_images(self, owner: Optional[str] = None) -> Iterator[Image]: ...

    def get_image(self, image_id: str) -> Image: ...

    def image_name(self, name: str, distinct: str = "") -> str: ...

    def create_image(self, spec: ImageSpec, data: BinaryIO) -> Image: ...

    def update_image(self, image_id: str, properties: Mapping[str, Optional[str]], name: Optional[str] = None,
                     visibility: Optional[str] = None) -> Image: ...

    def set_image_active(self, image_id: str, active: bool) -> None: ...

    def delete_image(self, image_id: str) -> None: ...

    def image_in_use(self, image_id: str) -> Optional[bool]: ...

    def create_template(self, spec: TemplateSpec) -> VMTemplate: ...

    def list_templates(self) -> Iterator[VMTemplate]: ...

    def delete_template(self, template_id: str) -> None: ...


class UserDirectory(Declared, Protocol):
    """What the Perun synchroniser reads and writes: groups, users, and who still runs VMs."""

    def list_projects(self) -> Iterator[Project]: ...

    def list_groups(self) -> Iterator[Group]: ...

    def list_users(self) -> Iterator[User]: ...

    def create_user(self, spec: UserSpec) -> User: ...

    def update_user(self, user_id: str, spec: UserSpec) -> User: ...

    def set_user_enabled(self, user_id: str, enabled: bool) -> None: ...

    def delete_user(self, user_id: str) -> None: ...

    def list_vms(self, project_id: Optional[str] = None,
                 active_since: Optional[datetime] = None) -> Iterator[VM]: ...


if TYPE_CHECKING:  # mypy proves every backend serves every role (capabilities say which it can do)
    from .base import CloudBackend

    def _every_backend_serves_every_role(
            backend: CloudBackend) -> Tuple[UsageSource, InfoSource, ImageStore, UserDirectory]:
        return backend, backend, backend, backend


__all__ = ["Declared", "UsageSource", "InfoSource", "ImageStore", "UserDirectory"]
