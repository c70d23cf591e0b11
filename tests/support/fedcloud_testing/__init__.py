"""Protocol simulators (OpenStack, OpenNebula, AMS, Perun) and test PKI, used by tests and benchmarks.

They listen on loopback only and are driven through the real client libraries.
"""
