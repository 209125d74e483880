"""Which resources a shard owns, and the label-selector syntax of its setting."""

from __future__ import annotations

import pytest

from aml_identity.reconcile.shards import SelectorError, owns, parse_selector


@pytest.mark.parametrize(
    ("selector", "labels", "selected"),
    [
        ("shard=b", {"shard": "b"}, True),
        ("shard=b", {"shard": "a"}, False),
        ("shard==b", {"shard": "b"}, True),
        ("shard!=b", {"shard": "a"}, True),
        ("shard!=b", {}, True),
        ("shard!=b", {"shard": "b"}, False),
        ("shard", {"shard": ""}, True),
        ("shard", {}, False),
        ("!shard", {}, True),
        ("!shard", {"shard": "a"}, False),
        ("shard in (a, b)", {"shard": "b"}, True),
        ("shard in (a, b)", {"shard": "c"}, False),
        ("shard notin (a,b)", {"shard": "c"}, True),
        ("shard notin (a,b)", {}, True),
        ("team=ml, shard in (a,b), !legacy", {"team": "ml", "shard": "a"}, True),
        ("team=ml, shard in (a,b), !legacy", {"team": "ml", "shard": "a", "legacy": "1"}, False),
        ("aml-identity/shard=b", {"aml-identity/shard": "b"}, True),
    ],
)
def test_selector_syntax(selector: str, labels: dict[str, str], selected: bool) -> None:
    assert (
        owns(
            parse_selector(selector),
            cluster_resources=True,
            namespace="ns",
            namespace_labels=labels,
        )
        is selected
    )


@pytest.mark.parametrize("bad", ["=b", "a b", "in (x)", "!", "shard in (a"])
def test_a_bad_selector_is_refused(bad: str) -> None:
    with pytest.raises(SelectorError):
        parse_selector(bad)


def test_cluster_scoped_resources_belong_to_the_shard_that_says_so() -> None:
    selector = parse_selector("shard=b")
    for cluster_resources in (True, False):
        assert (
            owns(
                selector, cluster_resources=cluster_resources, namespace=None, namespace_labels=None
            )
            is cluster_resources
        )


def test_without_a_selector_every_namespace_is_owned() -> None:
    assert owns(None, cluster_resources=True, namespace="any", namespace_labels=None)


def test_a_namespace_not_indexed_yet_is_nobodys() -> None:
    assert not owns(
        parse_selector("!shard"), cluster_resources=True, namespace="new", namespace_labels=None
    )
