"""``fedcloud-site migrate``: configuration and state of the tools a site runs today, carried over.

One module per source tool reads its configuration (and state) and maps it onto our sections:
:mod:`.caso` (cASO: accounting, its ``lastrun`` files), :mod:`.ssm` (apel-ssm sender: the ssm section,
its outgoing dirq queue), :mod:`.cloudinfo` (cloud-info-provider: site identity and the published GLUE
IDs), :mod:`.atrope` (atrope's image list sources).  :mod:`.report` records every option mapped, not
mapped (with why) and every default that differs; :mod:`.fragments` validates the resulting conf.d
fragments through our configuration loader and writes them atomically; :mod:`.command` is the CLI.
"""
