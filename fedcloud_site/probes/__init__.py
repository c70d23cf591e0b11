"""Site self-check probes: ``fedcloud-site check <probe>``, monitoring-plugin style.

Each probe module has ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args, config, report)``; it reads the state the daemons write (never the cloud) and
adds findings and perfdata to a :class:`~fedcloud_site.probes.report.Report`.
"""
