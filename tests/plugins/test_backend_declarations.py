"""Backends declare what they are and can do; daemons read the declaration, never a table of names.

A backend plugin installed from its own distribution gets its CloudType label, GLUE facts and
protected users used as declared, and a configuration needing a capability it lacks is refused
by ``check-config`` with the capability named.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from plugin_dist import install_distribution

from fedcloud_site import __version__, cli
from fedcloud_site.accounting.extractor import cloud_type_of
from fedcloud_site.cloud import backend_class, backend_declaration, backend_names
from fedcloud_site.cloud.base import Capability, CloudBackend
from fedcloud_site.config import load_config
from fedcloud_site.schema import ConfigError

REPO = Path(__file__).resolve().parents[2]
DEMO_SITE = REPO / "etc" / "fedcloud-site" / "demo-site.yaml"

PLUGIN = '''
from fedcloud_site.cloud.base import BackendDeclaration, Capability, MiddlewareFacts
from fedcloud_site.cloud.static import StaticBackend


class BoxBackend(StaticBackend):
    name = "box"
    declaration = BackendDeclaration(
        label="Box Cloud",
        middleware=MiddlewareFacts(api_type="Box", api_version="v9", interface_name="org.example.box",
                                   implementor="Box People", implementation_name="Box Compute",
                                   semantics="https://box.example.org/api", product_name="Box"),
        capabilities=frozenset({Capability.USAGE}),
        protected_users=frozenset({"root@box"}))


class ShelfBackend(StaticBackend):
    name = "shelf"
    declaration = BackendDeclaration(label="Shelf", capabilities=frozenset({Capability.IMAGE_WRITE}))


class BareBackend(StaticBackend):
    name = "bare"
    declaration = BackendDeclaration(label="Bare")
'''


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    root = install_distribution(tmp_path / "site-packages", "box-backend", {"box_backend.py": PLUGIN}, {
        "fedcloud_site.cloud_backends": {"box": "box_backend:BoxBackend", "bare": "box_backend:BareBackend",
        "shelf": "box_backend:ShelfBackend"}})
    monkeypatch.syspath_prepend(str(root))
    return root


def config_text(backend: str, extra: str = "") -> str:
    return (f"site: {{name: X, endpoint: 'https://x.example.org:5000/v3'}}\n"
            f"cloud: {{backend: {backend}, {backend}: {{site_file: {DEMO_SITE}}}}}\n{extra}")


@pytest.mark.parametrize("name", ["static", "openstack", "opennebula"])
def test_every_builtin_backend_declares_itself(name):
    declaration = backend_declaration(name)
    assert declaration.label and Capability.USAGE in declaration.capabilities
    assert declaration.protected_users
    assert backend_class(name).declaration is declaration


def test_labels_glue_facts_and_capabilities_of_the_builtin_backends():
    assert [backend_declaration(n).label for n in ("openstack", "opennebula", "static")] == \
        ["OpenStack", "OpenNebula", "static"]
    assert backend_declaration("static").middleware is None
    assert backend_declaration("opennebula").middleware.interface_name == "org.opennebula.compute"
    assert backend_declaration("openstack").lacks(list(Capability)) == [Capability.TEMPLATES, Capability.DATASTORES]
    assert backend_declaration("opennebula").lacks(list(Capability)) == [Capability.VOLUMES,
                                                                        Capability.FLOATING_IPS]


def test_the_abstract_backend_declares_nothing():
    assert CloudBackend.declaration.capabilities == frozenset()
    assert CloudBackend.declaration.middleware is None


def test_a_plugin_backend_is_labelled_in_the_cloud_type_by_its_declaration(plugin, write_config):
    assert {"box", "bare"} <= set(backend_names())
    config = load_config(write_config(config_text("box")))
    assert cloud_type_of(config) == f"fedcloud-site/{__version__} (Box Cloud)"


def test_cloudinfo_publishes_the_plugins_glue_facts_without_a_middleware_key(plugin, write_config):
    config = load_config(write_config(config_text("box", "cloudinfo: {interval: 1h}\n")))
    settings = config.section("cloudinfo")
    assert settings.middleware == "box" and settings.missing() == []
    assert settings.fact("interface_name") == "org.example.box"
    assert settings.endpoint_id == "https://x.example.org:5000/v3_Box_v9"


def test_cloudinfo_middleware_must_name_a_backend_with_glue_facts(plugin, write_config):
    with pytest.raises(ConfigError, match=r"cloudinfo: middleware: 'bare' is not a backend with GLUE facts"):
        load_config(write_config(config_text("static", "cloudinfo: {middleware: bare}\n")))
    config = load_config(write_config(config_text("bare", "cloudinfo: {middleware: box}\n")))
    assert config.section("cloudinfo").fact("product_name") == "Box"


@pytest.mark.parametrize("section, key, capability", [
    ("perun: {source: file, file: /dev/null}", "perun", "users"),
    ("images: {}", "images", "image_write"),
])
def test_check_config_refuses_a_section_needing_a_capability_the_backend_lacks(
        plugin, write_config, capsys, section, key, capability):
    path = write_config(config_text("box", section + "\n"))
    assert cli.main(["--config", str(path), "check-config"]) == 2
    error = capsys.readouterr().err
    assert f"{key}: the box backend has no" in error and f"'{capability}' capability" in error


def test_a_new_backend_without_templates_is_refused_a_template_at_validation(plugin, write_config):
    assert load_config(write_config(config_text("shelf", "images: {}\n"))).section("images")
    with pytest.raises(ConfigError, match=r"images.opennebula_template: the shelf backend has no VM templates"):
        load_config(write_config(config_text("shelf", "images: {opennebula_template: true}\n")))


def test_running_a_daemon_without_its_section_is_refused_too(plugin, write_config, capsys):
    path = write_config(config_text("box"))
    assert cli.main(["--config", str(path), "check-config"]) == 0  # no perun section: nothing to refuse
    assert cli.main(["--config", str(path), "perun", "once"]) == 2
    error = capsys.readouterr().err
    assert "perun: the box backend has no user directory (it does not declare the 'users' capability)" in error


def test_accounting_needs_usage_history(plugin, write_config):
    with pytest.raises(ConfigError, match=r"accounting: the bare backend has no usage history"):
        load_config(write_config(config_text("bare", "accounting: {}\n")))
