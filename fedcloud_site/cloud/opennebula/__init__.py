"""The ``opennebula`` cloud backend: OpenNebula 6.x through pyone (XML-RPC).

:mod:`.backend` holds the backend and the mapping of OpenNebula objects to our records,
:mod:`.states` the VM state table, :mod:`.records` the reading of OpenNebula documents and
:mod:`.transport` the XML-RPC transport given to pyone.
"""

from .backend import (
    DEACTIVATED_MARKER,
    MANAGED_MARKER,
    USER_MANAGED_ATTRIBUTES,
    OpenNebulaBackend,
    OpenNebulaSettings,
)
from .records import (
    attribute_name,
    element_dict,
    escape_dn,
    pci_accelerator,
    template_specs,
    template_xml,
    unescape_dn,
    x509_password,
)
from .states import VM_LCM_STATES, VM_STATES, vm_state
from .transport import parse_xmlrpc_response

__all__ = ["OpenNebulaBackend", "OpenNebulaSettings", "VM_STATES", "VM_LCM_STATES", "vm_state", "attribute_name",
           "element_dict", "template_xml", "pci_accelerator", "template_specs", "parse_xmlrpc_response",
           "escape_dn", "unescape_dn", "x509_password", "MANAGED_MARKER", "DEACTIVATED_MARKER",
           "USER_MANAGED_ATTRIBUTES"]
