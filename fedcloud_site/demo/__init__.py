"""What the offline demo (``scripts/demo.sh``) and the package check need beside the product: a throw-away CA
(:mod:`.ca`), the demo credentials and signed image list (:mod:`.pki`), a local ARGO Messaging Service
simulator (:mod:`.ams`) and the loopback HTTP(S) server it is built on (:mod:`.http`).

They import nothing else of fedcloud_site: the demo checks the product from the outside.  The other
simulators and test launchers live in ``tests/support/fedcloud_testing`` and are not shipped.
"""
