"""The Glance v2 schemas the simulator serves and enforces (``GET /v2/schemas/...``).

Shape and limits as Glance's API reference documents them: an image's ``name``, ``owner``, tags and custom
property keys hold at most 255 characters, custom property values are strings, ``min_ram``/``min_disk`` are
integers. python-glanceclient builds its image model from these documents, so they must be complete.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

MAX_LENGTH = 255
DISK_FORMATS = ["ami", "ari", "aki", "vhd", "vhdx", "vmdk", "raw", "qcow2", "vdi", "iso", "ploop"]
CONTAINER_FORMATS = ["ami", "ari", "aki", "bare", "ovf", "ova", "docker", "compressed"]
STATUSES = ["queued", "saving", "active", "killed", "deleted", "uploading", "importing", "pending_delete",
            "deactivated"]
VISIBILITIES = ["community", "public", "private", "shared"]


def _text(description: str, read_only: bool = False, nullable: bool = True,
          max_length: Optional[int] = MAX_LENGTH) -> Dict[str, Any]:
    field: Dict[str, Any] = {"type": ["null", "string"] if nullable else "string", "description": description}
    if max_length is not None:
        field["maxLength"] = max_length
    if read_only:
        field["readOnly"] = True
    return field


def image_schema() -> Dict[str, Any]:
    """The ``image`` schema: every core attribute, custom properties as strings."""
    properties: Dict[str, Any] = {
        "id": {"type": "string", "description": "An identifier for the image",
               "pattern": "^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){12}$"},
        "name": _text("Descriptive name for the image"),
        "status": {"type": "string", "readOnly": True, "enum": STATUSES, "description": "Status of the image"},
        "visibility": {"type": "string", "enum": VISIBILITIES, "description": "Scope of image accessibility"},
        "protected": {"type": "boolean", "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean", "description": "If true, image will not appear in default image list"},
        "checksum": _text("md5 hash of image contents.", read_only=True, max_length=32),
        "os_hash_algo": _text("Algorithm to calculate the os_hash_value", read_only=True, max_length=64),
        "os_hash_value": _text("Hexdigest of the image contents", read_only=True, max_length=128),
        "owner": _text("Owner of the image"),
        "size": {"type": ["null", "integer"], "readOnly": True, "description": "Size of image file in bytes"},
        "virtual_size": {"type": ["null", "integer"], "readOnly": True, "description": "Virtual size of image"},
        "container_format": {"type": ["null", "string"], "enum": [None] + CONTAINER_FORMATS,
                             "description": "Format of the container"},
        "disk_format": {"type": ["null", "string"], "enum": [None] + DISK_FORMATS,
                        "description": "Format of the disk"},
        "created_at": {"type": "string", "readOnly": True, "description": "Date and time of image registration"},
        "updated_at": {"type": "string", "readOnly": True, "description": "Date and time of the last modification"},
        "tags": {"type": "array", "items": {"type": "string", "maxLength": MAX_LENGTH},
                 "description": "List of strings related to the image"},
        "direct_url": {"type": "string", "readOnly": True, "description": "URL to access the image file"},
        "min_ram": {"type": "integer", "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer", "description": "Amount of disk space (in GB) required to boot image."},
        "self": {"type": "string", "readOnly": True, "description": "An image self url"},
        "file": {"type": "string", "readOnly": True, "description": "An image file url"},
        "stores": {"type": "string", "readOnly": True, "description": "Store in which image data resides."},
        "schema": {"type": "string", "readOnly": True, "description": "An image schema url"},
        "locations": {"type": "array", "items": {"type": "object", "properties": {
            "url": {"type": "string", "maxLength": 255}, "metadata": {"type": "object"}},
            "required": ["url", "metadata"]}, "description": "A set of URLs to access the image file"},
    }
    return {"name": "image", "properties": properties, "additionalProperties": {"type": "string"},
            "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
                      {"rel": "describedby", "href": "{schema}"}]}


def images_schema() -> Dict[str, Any]:
    """The ``images`` (list) schema."""
    return {"name": "images",
            "properties": {"images": {"type": "array", "items": image_schema()},
                           "schema": {"type": "string"}, "first": {"type": "string"}, "next": {"type": "string"}},
            "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                      {"rel": "describedby", "href": "{schema}"}]}


def member_schema() -> Dict[str, Any]:
    """The ``member`` schema (an image shared with a project)."""
    return {"name": "member", "properties": {
        "created_at": {"type": "string", "description": "Date and time of image member creation"},
        "updated_at": {"type": "string", "description": "Date and time of last modification of image member"},
        "image_id": {"type": "string", "description": "An identifier for the image"},
        "member_id": {"type": "string", "description": "An identifier for the image member (tenantId)"},
        "schema": {"type": "string", "readOnly": True},
        "status": {"type": "string", "enum": ["pending", "accepted", "rejected"],
                   "description": "The status of this image member"}}}


def members_schema() -> Dict[str, Any]:
    """The ``members`` (list) schema."""
    return {"name": "members", "properties": {"members": {"type": "array", "items": member_schema()},
                                              "schema": {"type": "string"}},
            "links": [{"rel": "describedby", "href": "{schema}"}]}


SCHEMAS = {"image": image_schema, "images": images_schema, "member": member_schema, "members": members_schema}


def check_image_value(key: str, value: Any) -> Optional[str]:
    """Why ``key: value`` breaks the image schema (Glance's 400 message), or None when it fits."""
    field = image_schema()["properties"].get(key)
    if field is None:  # a custom property
        if len(key) > MAX_LENGTH:
            return f"Provided object does not match schema 'image': {key!r} is too long"
        if not isinstance(value, str):
            return (f"Provided object does not match schema 'image': {value!r} is not of type 'string' "
                    f"Failed validating 'type' in schema['additionalProperties']")
        return None
    kinds = field.get("type")
    allowed = kinds if isinstance(kinds, list) else [kinds]
    python_types: Dict[str, type] = {"null": type(None), "string": str, "boolean": bool, "integer": int, "array": list,
                    "object": dict}
    if not any(isinstance(value, python_types[kind]) and not (kind == "integer" and isinstance(value, bool))
               for kind in allowed):
        return f"Provided object does not match schema 'image': {value!r} is not of type {kinds!r}"
    if isinstance(value, str) and len(value) > field.get("maxLength", len(value)):
        return (f"Provided object does not match schema 'image': {value!r} is too long "
                f"Failed validating 'maxLength' in schema['properties'][{key!r}]")
    if isinstance(value, list) and key == "tags" and any(not isinstance(tag, str) or len(tag) > MAX_LENGTH
                                                         for tag in value):
        return f"Provided object does not match schema 'image': a tag of {value!r} is not a string of <= 255"
    return None
