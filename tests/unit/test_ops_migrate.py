"""Which mapping changes need ``newspipe migrate`` (a new index) and which put_mapping takes."""

from pipeline.infra.es import FAMILIES, template_body
from pipeline.ops.migrate import mapping_conflicts, next_index_name


def test_a_new_field_is_no_conflict_a_changed_type_is():
    current = {"title": {"type": "text"}, "source": {"type": "text"}}
    wanted = {
        "title": {"type": "text"},
        "source": {"type": "keyword"},
        "story_id": {"type": "keyword"},
    }
    assert mapping_conflicts(current, wanted) == ["source: type text -> keyword"]


def test_nested_properties_subfields_and_parameters():
    current = {
        "dateline": {"properties": {"place": {"type": "text"}}},
        "title": {"type": "text", "analyzer": "standard", "fields": {"keyword": {"type": "text"}}},
        "extra": {"type": "object", "enabled": True},
    }
    wanted = {
        "dateline": {"properties": {"place": {"type": "keyword"}}},
        "title": {
            "type": "text",
            "analyzer": "standard",
            "fields": {"keyword": {"type": "keyword"}},
        },
        "extra": {"type": "object", "enabled": False},
    }
    assert sorted(mapping_conflicts(current, wanted)) == [
        "dateline.place: type text -> keyword",
        "extra: enabled true -> false",
        "title.keyword: type text -> keyword",
    ]


def test_the_templates_agree_with_themselves():
    for family in FAMILIES:
        props = template_body(family)["mappings"]["properties"]
        assert mapping_conflicts(props, props) == [], family


def test_elasticsearch_answers_booleans_as_strings_for_some_parameters():
    assert (
        mapping_conflicts(
            {"t": {"type": "object", "dynamic": "true"}}, {"t": {"type": "object", "dynamic": True}}
        )
        == []
    )


def test_next_index_name():
    assert (
        next_index_name("n-articles", ["n-articles-000001", "n-articles-000002"])
        == "n-articles-000003"
    )
    assert next_index_name("n-articles", []) == "n-articles-000001"
