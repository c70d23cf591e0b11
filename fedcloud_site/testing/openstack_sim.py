"""The OpenStack simulator (alias module; the code lives in :mod:`fedcloud_site.testing.openstack`)."""

from .openstack import *  # noqa: F401,F403
from .openstack import __all__  # noqa: F401
