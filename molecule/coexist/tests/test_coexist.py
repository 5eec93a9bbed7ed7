"""coexist: foreign tables are byte-identical after apply, rollback, restart and persist."""

import pytest

from helpers import listing

testinfra_hosts = ["co1"]


@pytest.mark.parametrize("table", ["ip filter", "ip nat", "ip kube-proxy"])
def test_foreign_table_byte_identical(host, table):
    before = host.file("/root/foreign-before/%s.nft" % table.replace(" ", "_")).content_string
    assert before.strip()
    assert listing(host, table) == before


def test_only_expected_tables(host):
    tables = sorted(host.run("nft list tables").stdout.strip().splitlines())
    assert tables == ["table inet hostfw", "table ip filter", "table ip kube-proxy", "table ip nat"]


def test_our_table_is_the_good_one(host):
    text = listing(host)
    assert "default/baseline ingress" in text and "failsafe inbound" in text
    assert "cut-ssh" not in text
    assert host.file("/etc/hostfw/hostfw.nft").content_string.endswith(text)
    assert host.run("cat /run/hostfw/rolled-back-*.json").rc == 0, "the side effect rolled back"
