"""The throw-away credentials and signed image list of the offline demo, all from one new demo CA.

Usage: ``python3 -m fedcloud_site.demo.pki OUTDIR`` (``scripts/demo.sh`` runs it into
``demo-output/pki``; ``etc/fedcloud-site/demo.yaml`` reads from there).

Creates in OUTDIR (replacing what an earlier run left):

* ``certificates/`` — a grid CA directory (``<hash>.0`` + ``<hash>.r0`` CRL) holding a new demo CA, and
  ``ca.pem``, that CA's certificate alone;
* ``endorser/hostcert.pem``, ``endorser/hostkey.pem`` — the image-list endorser's host certificate (no
  S/MIME key usage, like AppDB's);
* ``host/hostcert.pem``, ``host/hostkey.pem`` — the site's host certificate, with which ``ssm`` signs the
  accounting messages and authenticates to AMS (exchanging it for a token, as at EGI);
* ``ams/servercert.pem``, ``ams/serverkey.pem`` — the TLS server certificate of the local AMS simulator
  (``localhost``, ``127.0.0.1``, ``::1``); ``ams/token`` — a fresh random token for the simulator to hand
  out for the site host certificate;
* ``images/demo.qcow2`` — a tiny valid qcow2 image made with ``qemu-img`` (``images/demo.raw``, a few KB of
  bytes, where qemu-img is missing);
* ``image.list`` — a HEPiX image list naming that image by an absolute ``file://`` URL, S/MIME signed by the
  endorser, expiring in 30 days (``--days``).

The list's ``dc:identifier`` is fixed and its ``hv:version`` is the creation time, so a new run's list is
accepted after an older one.  The CA's key is never written: nothing else can be signed with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Dict, List, Optional

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from .ca import CertificateAuthority, PrivateKey, utcnow, write_ca_directory

CA_DN = "/DC=org/DC=example/CN=fedcloud-site Demo CA"
ENDORSER_HOST = "appdb.demo.example.org"
ENDORSER_DN = f"/DC=org/DC=example/O=Hosts/CN={ENDORSER_HOST}"
LIST_IDENTIFIER = "0e5c9a52-7a6f-4c1e-9d3b-fedc10d5e001"
IMAGE_IDENTIFIER = "0e5c9a52-7a6f-4c1e-9d3b-fedc10d5e101"
VO = "fedcloud.egi.eu"
SITE_HOST = "cloud.demo.example.org"
SITE_DN = f"/DC=org/DC=example/O=Hosts/CN={SITE_HOST}"
AMS_SERVER_DN = "/DC=org/DC=example/O=Hosts/CN=localhost"
RAW_SIZE = 64 * 1024


@dataclass
class DemoPki:
    """What :func:`create` wrote."""

    capath: Path
    list_file: Path
    image_file: Path
    image_format: str
    host_cert: Path
    host_key: Path
    server_cert: Path
    server_key: Path
    token_file: Path
    endorser_dn: str = ENDORSER_DN
    ca_dn: str = CA_DN
    host_dn: str = SITE_DN


def make_image(directory: Path, qemu_img: Optional[str] = "qemu-img") -> Path:
    """A tiny qcow2 (1 MiB virtual, ~12 KB) when ``qemu_img`` runs, else a few KB of raw bytes."""
    directory.mkdir(parents=True, exist_ok=True)
    if qemu_img and shutil.which(qemu_img):
        path = directory / "demo.qcow2"
        path.unlink(missing_ok=True)
        try:
            subprocess.run([qemu_img, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", str(path), "1M"],
                           check=True, capture_output=True, timeout=60)
            return path
        except (OSError, subprocess.SubprocessError):
            path.unlink(missing_ok=True)
    path = directory / "demo.raw"
    block = hashlib.sha256(b"fedcloud-site demo image").digest()
    path.write_bytes(block * (RAW_SIZE // len(block)))
    return path


def _sha512(path: Path) -> str:
    digest = hashlib.sha512()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def iso_utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def sign_smime(payload: bytes, cert: x509.Certificate, key: PrivateKey) -> bytes:
    """What ``openssl smime -sign -text`` writes: a multipart/signed message, text/plain part, SHA-256."""
    return pkcs7.PKCS7SignatureBuilder().set_data(payload).add_signer(cert, key, hashes.SHA256()).sign(
        serialization.Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Text])


def image_list_document(list_file: Path, image: Path, image_format: str, days: int) -> Dict[str, Any]:
    """The ``hv:imagelist`` JSON document for ``image``."""
    now = utcnow()
    entry = {
        "dc:identifier": IMAGE_IDENTIFIER, "dc:title": "fedcloud-site demo image",
        "dc:description": "A tiny empty disk image to show the image-list subscriber offline",
        "hv:uri": image.resolve().as_uri(), "hv:size": str(image.stat().st_size),
        "sl:checksum:sha512": _sha512(image), "hv:version": "1.0", "hv:format": image_format.upper(),
        "hv:hypervisor": "QEMU,KVM", "sl:arch": "x86_64", "sl:os": "Linux", "sl:osname": "Demo",
        "sl:osversion": "1.0", "hv:ram_minimum": "512", "hv:core_minimum": "1",
        "ad:mpuri": f"https://{ENDORSER_HOST}/store/vm/image/{IMAGE_IDENTIFIER}:1/",
    }
    return {"hv:imagelist": {
        "dc:identifier": LIST_IDENTIFIER, "dc:title": f"{VO} (demo)", "dc:description": "fedcloud-site demo list",
        "dc:source": f"https://{ENDORSER_HOST}/", "ad:vo": VO, "hv:version": now.strftime("%Y%m%d%H%M%S"),
        "dc:date:created": iso_utc(now), "dc:date:expires": iso_utc(now + timedelta(days=days)),
        "hv:uri": list_file.resolve().as_uri(),
        "hv:endorser": {"hv:x509": {"dc:creator": "fedcloud-site demo endorser", "hv:email": "demo@example.org",
                                    "hv:dn": ENDORSER_DN, "hv:ca": CA_DN}},
        "hv:images": [{"hv:image": entry}]}}


def create(outdir: Path, days: int = 30, qemu_img: Optional[str] = "qemu-img") -> DemoPki:
    """Write the demo CA directory, the endorser, site host and AMS server credentials, an AMS token, the
    image and the signed list into ``outdir``."""
    outdir = Path(outdir).resolve()
    capath = outdir / "certificates"
    shutil.rmtree(capath, ignore_errors=True)  # an earlier run's CA must not stay trusted
    ca = CertificateAuthority(CA_DN)
    endorser = ca.host(ENDORSER_HOST, dn_prefix="/DC=org/DC=example/O=Hosts")
    write_ca_directory(capath, [ca])
    ca.write_cert(outdir / "ca.pem")
    endorser.write(outdir / "endorser")
    host = ca.host(SITE_HOST, dn_prefix="/DC=org/DC=example/O=Hosts").write(outdir / "host")
    server = ca.server(AMS_SERVER_DN).write(outdir / "ams", "servercert.pem", "serverkey.pem")
    token_file = outdir / "ams" / "token"
    token_file.write_text(secrets.token_hex(16) + "\n", encoding="ascii")
    os.chmod(token_file, 0o600)
    image = make_image(outdir / "images", qemu_img)
    list_file = outdir / "image.list"
    image_format = "qcow2" if image.suffix == ".qcow2" else "raw"
    document = image_list_document(list_file, image, image_format, days)
    signed = sign_smime(json.dumps(document, indent=2).encode(), endorser.cert, endorser.key)
    list_file.write_bytes(signed)
    return DemoPki(capath=capath, list_file=list_file, image_file=image, image_format=image_format,
                   host_cert=host.cert, host_key=host.key, server_cert=server.cert, server_key=server.key,
                   token_file=token_file)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m fedcloud_site.demo.pki",
                                     description="Write a throw-away CA, endorser, site host and AMS server "
                                                 "credentials, AMS token, image and signed image list.")
    parser.add_argument("outdir", type=Path, help="directory to write into (e.g. demo-output/pki)")
    parser.add_argument("--days", type=int, default=30, help="list validity in days (default 30)")
    parser.add_argument("--qemu-img", default="qemu-img", help="qemu-img to make a qcow2 image ('' for raw)")
    args = parser.parse_args(argv)
    try:
        made = create(args.outdir, days=args.days, qemu_img=args.qemu_img or None)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        print(f"demo pki: cannot create it in {args.outdir}: {exc}", file=sys.stderr)
        return 1
    print(f"demo pki: CA directory {made.capath}; image list {made.list_file} (signed by {made.endorser_dn}), "
          f"image {made.image_file} ({made.image_format}); site host certificate {made.host_cert} "
          f"({made.host_dn}); AMS server certificate {made.server_cert}, token {made.token_file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
