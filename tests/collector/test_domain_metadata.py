"""Metadata tags: the element at a path below a namespace's root, cached per domain."""

from collector.domain_metadata import MetadataTags, metadata_value

NOVA = "http://openstack.org/xmlns/libvirt/nova/1.1"
NOVA_XML = f"""<nova:instance xmlns:nova="{NOVA}">
  <nova:name>web, "front" 1</nova:name>
  <nova:owner><nova:user uuid="u1">alice</nova:user><nova:project uuid="p1">ops ünï</nova:project></nova:owner>
</nova:instance>"""


def test_a_path_below_the_namespace_root_gives_the_element_text():
    assert metadata_value(NOVA_XML, NOVA, "name") == 'web, "front" 1'
    assert metadata_value(NOVA_XML, NOVA, "owner/project") == "ops ünï"


def test_a_missing_element_or_broken_xml_gives_none():
    assert metadata_value(NOVA_XML, NOVA, "owner/nothing") is None
    assert metadata_value("<not xml", NOVA, "name") is None


def test_tags_are_read_once_per_namespace_and_cached_until_the_refresh():
    calls = []
    now = [0.0]

    def fetch(domain, namespace):
        calls.append((domain, namespace))
        return NOVA_XML

    tags = MetadataTags({"nova_name": f"{NOVA} name", "nova_project": f"{NOVA} owner/project"}, fetch, lambda: now[0])
    assert tags.tags("vm1") == {"nova_name": 'web, "front" 1', "nova_project": "ops ünï"}
    tags.tags("vm1")
    assert calls == [("vm1", NOVA)]
    now[0] = 301.0
    tags.tags("vm1")
    assert len(calls) == 2
