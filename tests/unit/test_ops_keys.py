"""Per-owner access rules of API keys (no server)."""

import pytest

from pipeline.ops.keys import Caller, parse_key


def test_an_owner_key_sees_its_own_an_admin_key_everything():
    alice, admin = Caller("alice"), Caller("ops", admin=True)
    assert alice.may_access("alice") and not alice.may_access("bob")
    assert admin.may_access("alice") and admin.may_access("bob")
    assert alice.owner_filter() == "alice" and alice.owner_filter("alice") == "alice"
    with pytest.raises(PermissionError):
        alice.owner_filter("bob")
    assert admin.owner_filter() is None and admin.owner_filter("bob") == "bob"


def test_key_format():
    assert parse_key("np_0123abcd_secretpart") == "0123abcd"
    assert parse_key("np_0123abcd_se_cr_et") == "0123abcd"
    for bad in ("", "np__x", "np_id_", "xx_id_secret", "change-me"):
        assert parse_key(bad) is None, bad
