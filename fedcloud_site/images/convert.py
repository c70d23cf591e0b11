"""Real disk format of a downloaded image, OVA unpacking, and conversion with ``qemu-img`` when needed.

``hv:format`` in lists is free text and often wrong, so the format is read from the file's magic bytes
(as cloudkeeper does with ``file -b``). An OVA (a tar archive) must hold exactly one disk, which is
streamed out of the archive. Nothing is converted when the cloud accepts the format as it is.
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence

from ..errors import FedcloudSiteError

_DISK_SUFFIXES = (".vmdk", ".qcow2", ".img", ".raw", ".vdi", ".vhd", ".vhdx")


class ConvertError(FedcloudSiteError):
    """The image cannot be brought into a format the cloud accepts; the message says why."""


@dataclass
class Prepared:
    path: Path  # the file to upload
    disk_format: str
    container_format: str = "bare"
    converted: bool = False
    extra_files: Sequence[Path] = ()  # intermediate files created (to clean up)


def detect_format(path: Path) -> str:
    """``qcow2``, ``vmdk``, ``vdi``, ``vhdx``, ``vhd``, ``iso``, ``ova`` (tar) or ``raw``."""
    with open(path, "rb") as handle:
        head = handle.read(512)
        if head[:4] == b"QFI\xfb":
            return "qcow2"
        if head[:4] == b"KDMV" or head.startswith(b"# Disk DescriptorFile"):
            return "vmdk"
        if head[64:68] == b"\x7f\x10\xda\xbe":
            return "vdi"
        if head[:8] == b"vhdxfile":
            return "vhdx"
        if head[257:262] == b"ustar":
            return "ova"
        handle.seek(32769)
        if handle.read(5) == b"CD001":
            return "iso"
        size = handle.seek(0, os.SEEK_END)
        if size >= 512:
            handle.seek(size - 512)
            if handle.read(8) == b"conectix":
                return "vhd"
    return "raw"


def extract_ova(path: Path, target: Path) -> Path:
    """Stream the single disk of an OVA into ``target``; an OVA with no or several disks is refused."""
    try:
        with tarfile.open(path, "r:*") as archive:
            disks = [m for m in archive.getmembers() if m.isfile() and m.name.lower().endswith(_DISK_SUFFIXES)]
            if len(disks) != 1:
                names = [m.name for m in disks] or "none"
                raise ConvertError(f"OVA must contain exactly one disk image, found {names}")
            source = archive.extractfile(disks[0])
            if source is None:
                raise ConvertError(f"OVA member {disks[0].name} cannot be read")
            tmp = target.with_name(target.name + ".tmp")
            with open(tmp, "wb") as out:
                for chunk in iter(lambda: source.read(1 << 20), b""):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, target)
            return target
    except (tarfile.TarError, OSError) as exc:
        raise ConvertError(f"cannot unpack OVA {path.name}: {exc}") from exc


def virtual_size(path: Path, fmt: str, qemu_img: str = "qemu-img", timeout: float = 120) -> Optional[int]:
    """Virtual disk size per ``qemu-img info`` (None when it cannot tell)."""
    try:
        result = subprocess.run([qemu_img, "info", "--output=json", "-f", fmt, str(path)], capture_output=True,
                                timeout=timeout, check=False)
        if result.returncode == 0:
            return int(json.loads(result.stdout)["virtual-size"])
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError):
        pass
    return None


def convert(source: Path, source_format: str, target: Path, target_format: str, qemu_img: str = "qemu-img",
            timeout: float = 6 * 3600) -> Path:
    """``qemu-img convert`` into ``target`` (through a temporary file, removed on failure)."""
    tmp = target.with_name(target.name + ".tmp")
    command = [qemu_img, "convert", "-q", "-f", source_format, "-O", target_format, str(source), str(tmp)]
    try:
        result = subprocess.run(command, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError as exc:
        raise ConvertError(f"{qemu_img} not found (install qemu-utils or set images.convert: false)") from exc
    except subprocess.TimeoutExpired as exc:
        tmp.unlink(missing_ok=True)
        raise ConvertError(f"qemu-img convert {source_format} -> {target_format} timed out") from exc
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ConvertError(f"qemu-img convert {source_format} -> {target_format} failed: "
                           f"{detail[-1] if detail else result.returncode}")
    os.replace(tmp, target)
    return target


def prepare(path: Path, formats: List[str], allow_convert: bool, qemu_img: str = "qemu-img",
            reserve: Optional[Callable[[int], None]] = None) -> Prepared:
    """Bring a verified download into one of ``formats`` (preferred first); ``reserve(bytes)`` is called
    before writing a new file so that the caller can check disk space and quota."""
    fmt = detect_format(path)
    extra: List[Path] = []
    disk = path
    if fmt == "ova":
        if reserve:
            reserve(path.stat().st_size)
        disk = extract_ova(path, path.with_name(path.name + ".disk"))
        extra.append(disk)
        fmt = detect_format(disk)
        if fmt in ("ova", "iso"):
            raise ConvertError(f"OVA disk has unsupported format {fmt}")
    if fmt in formats:
        return Prepared(disk, fmt, converted=disk != path, extra_files=extra)
    if not allow_convert:
        raise ConvertError(f"image format {fmt} is not among the accepted formats {formats} and conversion "
                           f"is disabled (images.convert)")
    if fmt == "iso":
        raise ConvertError(f"ISO images cannot be converted to {formats}; add iso to images.formats")
    target_format = formats[0]
    if reserve:
        estimate = virtual_size(disk, fmt, qemu_img) if target_format == "raw" else None
        reserve(estimate or disk.stat().st_size)
    target = path.with_name(f"{path.name}.{target_format}")
    convert(disk, fmt, target, target_format, qemu_img)
    extra.append(target)
    return Prepared(target, target_format, converted=True, extra_files=extra)
