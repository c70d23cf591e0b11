"""fedcloud-site: the EGI Federated Cloud site daemons in one suite."""

__version__ = "0.1.0"
