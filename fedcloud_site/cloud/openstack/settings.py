"""``cloud.openstack``: the OpenStack backend's configuration section."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from ...schema import Duration, Secret


@dataclass
class OpenStackSettings:
    """``cloud.openstack``: how to reach and authenticate to the cloud."""

    auth_url: Optional[str] = None  # Keystone v3, e.g. https://keystone.example.org:5000/v3
    username: Optional[str] = None
    password: Optional[Secret] = None
    application_credential_id: Optional[str] = None
    application_credential_secret: Optional[Secret] = None
    user_domain_name: str = "Default"
    project_domain_name: str = "Default"
    project_name: Optional[str] = None
    project_id: Optional[str] = None
    system_scope: bool = False  # system-scoped token ("all") instead of a project
    cloud: Optional[str] = None  # a cloud of clouds.yaml instead of the keys above
    clouds_yaml: Optional[Path] = None  # default: the usual clouds.yaml locations
    region: Optional[str] = None
    cacert: Optional[Path] = None
    verify: bool = True
    interface: Literal["public", "internal", "admin"] = "public"
    timeout: Duration = Duration(60)
    page_size: int = 500
    retries: int = 2  # per request, for connection failures, 5xx answers and cut bodies
    retry_delay: Duration = Duration(1)
    users_domain: str = "default"  # Keystone domain id where managed users are created
    member_role: str = "member"  # role granted on a project to put a user in that group

    def validate(self) -> None:
        if self.cloud is None and self.auth_url is None:
            raise ValueError("give auth_url (with credentials) or cloud (a clouds.yaml entry)")
        if self.cloud is not None and (self.auth_url or self.username or self.application_credential_id):
            raise ValueError("give either cloud or auth_url with credentials, not both")
        if self.clouds_yaml is not None and self.cloud is None:
            raise ValueError("clouds_yaml needs cloud: the name of the cloud to use from it")
        if self.cloud is None:
            app = self.application_credential_id is not None or self.application_credential_secret is not None
            if app and (self.username or self.password):
                raise ValueError("give either username/password or application_credential_id/secret, not both")
            if app and not (self.application_credential_id and self.application_credential_secret):
                raise ValueError("application_credential_id and application_credential_secret go together")
            if not app and not (self.username and self.password):
                raise ValueError("username and password (or password_file) are required without an "
                                 "application credential")
            if app and (self.system_scope or self.project_name or self.project_id):
                raise ValueError("an application credential carries its own scope: drop system_scope/project_*")
            if self.system_scope and (self.project_name or self.project_id):
                raise ValueError("give either system_scope or project_name/project_id, not both")
            if not app and not self.system_scope and not (self.project_name or self.project_id):
                raise ValueError("give project_name (or project_id) or system_scope: true")
        if self.page_size < 1:
            raise ValueError("page_size must be at least 1")
        if self.retries < 0:
            raise ValueError("retries cannot be negative")
