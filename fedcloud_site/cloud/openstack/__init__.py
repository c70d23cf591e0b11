"""The ``openstack`` cloud backend: Keystone v3, Nova, Glance v2, Neutron and Cinder through openstacksdk.

:mod:`.backend` holds the backend (the facade the daemons use), :mod:`.session` the HTTP side (connection,
error mapping, paging, microversions), :mod:`.records` the pure converters and state tables, and
:mod:`.settings` the ``cloud.openstack`` configuration section.
"""

from .backend import OpenStackBackend
from .records import (
    GLANCE_MAX_NAME,
    INSTANCE_ACTION_STATES,
    MANAGED_ATTRIBUTE,
    NOVA_STATES,
    flavor_record,
    floating_ip_record,
    glance_image_name,
    state_change,
    user_record,
)
from .settings import OpenStackSettings

__all__ = ["OpenStackBackend", "OpenStackSettings", "NOVA_STATES", "INSTANCE_ACTION_STATES", "MANAGED_ATTRIBUTE",
           "GLANCE_MAX_NAME", "glance_image_name", "flavor_record", "floating_ip_record", "state_change",
           "user_record"]
