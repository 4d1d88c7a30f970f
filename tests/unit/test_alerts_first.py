"""Alerts first under backlog: the prefilter (pipeline.alerts.prefilter) and the enrich agent's
read-ahead that takes the articles it passes first (pipeline.stream.batching.Lookahead)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from pipeline.alerts.matcher import SubscriptionIndex, compile_query
from pipeline.alerts.prefilter import build_prefilter
from pipeline.stages.entities import InMemoryEntityRegistry, entity_ids_for_name
from pipeline.stream.batching import FirstThings, Lookahead, Revocations, take_batches_unacked
from schemas import Subscription
from tests.unit.test_batching import FakeStream


def resolver(name: str) -> set[str]:
    return entity_ids_for_name(name, InMemoryEntityRegistry())


def prefilter(*queries: str):
    return build_prefilter(compile_query(q, resolver).anchors for q in queries)


# --- the prefilter ---------------------------------------------------------------------------


def test_an_entity_passes_articles_with_any_form_of_its_name_and_no_others() -> None:
    us = prefilter('entity:"United States"')
    assert us.could_match("Talks", "U.S. officials met on Monday.")
    assert us.could_match("", "The United States of America and Canada")
    assert us.could_match("America votes", "")
    assert not us.could_match("Tell us more", "Canada and Mexico agreed on trade.")


def test_a_person_passes_articles_with_the_surname_in_any_spelling() -> None:
    person = prefilter('entity:"Vladimir Medinsky"')
    assert person.could_match("", "Medinski, the aide, said talks would go on.")
    assert not person.could_match("", "The aide said talks would go on.")


def test_an_acronym_of_the_gazetteer_passes_for_its_organisation() -> None:
    opec = prefilter('entity:"Organization of Petroleum Exporting Countries"')
    assert opec.could_match("OPEC output", "Ministers meet in Vienna.")
    assert not opec.could_match("Oil output", "Ministers meet in Vienna.")


def test_an_event_passes_articles_with_an_inflected_trigger() -> None:
    sanctions = prefilter("event:sanctions")
    assert sanctions.could_match("", "Washington imposed fresh sanctions on Tuesday.")
    assert sanctions.could_match("", "The country was embargoed for years.")
    assert not sanctions.could_match("", "Shares rose on strong earnings.")
    strike = prefilter("event:military_strike")
    assert strike.could_match("", "Missiles struck the port overnight.")


def test_an_unknown_event_type_passes_nothing() -> None:
    assert not prefilter("event:no_such_event")


def test_a_subscription_without_words_to_anchor_on_makes_every_article_possible() -> None:
    assert prefilter('entity:"United States"', "source:reuters") is None
    assert prefilter("lang:fr AND entity:Paris") is not None  # the entity anchors it


def test_a_per_story_keyword_passes_articles_with_the_word_as_the_matcher_analyses_it() -> None:
    words = prefilter("memoranda OR sanctions")
    assert words.could_match("", "A memorandum on sanctions")
    assert not words.could_match("", "A memo on tariffs")


def test_the_index_gives_the_anchors_of_immediate_subscriptions_after_the_nlp() -> None:
    index = SubscriptionIndex(resolver)
    before = index.version
    index.add(Subscription(id="a", owner="o", query="oil"))
    index.add(Subscription(id="b", owner="o", query='entity:"United States"'))
    index.add(Subscription(id="c", owner="o", query="event:sanctions", digest="daily"))
    index.add(Subscription(id="d", owner="o", query="oil", per_story=True))
    assert index.version > before
    anchors = index.immediate_anchors("enriched")
    assert len(anchors) == 2  # b and d: a is matched before the NER, c is a digest
    assert ("text", "oil") in set().union(*anchors)
    version = index.version
    index.remove("b")
    assert index.version > version


# --- the read-ahead --------------------------------------------------------------------------


def run(coro):
    return asyncio.run(coro)


def size(item) -> int:
    return len(item) if isinstance(item, str) else 1


def filled(items, urgent=(), max_defer_s=60.0, key=lambda item: None):
    async def go():
        ahead = Lookahead(100, FirstThings(lambda item: item in urgent, max_defer_s, key), size)
        for item in items:
            await ahead.put(item)
        return ahead

    return go


def test_a_backlog_gives_the_urgent_items_first_and_each_batch_in_arrival_order() -> None:
    async def go():
        ahead = await filled(list(range(10)), urgent={3, 7, 9})()
        return ahead.select(4), ahead.select(4), ahead.select(4)

    assert run(go()) == ([0, 3, 7, 9], [1, 2, 4, 5], [6, 8])


def test_without_a_backlog_nothing_is_reordered() -> None:
    async def go():
        ahead = await filled([0, 1, 2], urgent={2})()
        return ahead.select(4)

    assert run(go()) == [0, 1, 2]


def test_items_passed_over_for_max_defer_get_half_of_each_batch_oldest_first() -> None:
    async def go():
        ahead = await filled(list(range(8)), urgent={5, 6, 7}, max_defer_s=0.0)()
        return ahead.select(4), ahead.select(4)

    # every item is aged: the two oldest, then the urgent ones; then the rest
    assert run(go()) == ([0, 1, 5, 6], [2, 3, 4, 7])


def test_a_read_ahead_of_max_bytes_holds_the_reader_while_it_is_full() -> None:
    async def go():
        ahead = Lookahead(100, FirstThings(lambda item: False, 60.0), len, capacity_bytes=4)
        await ahead.put("aaa")
        await ahead.put("bb")  # room until the bytes reach the cap
        third = asyncio.ensure_future(ahead.put("c"))
        await asyncio.sleep(0.01)
        held = not third.done()
        ahead.select(1)
        await asyncio.wait_for(third, 1.0)
        return held, [e.item for e in ahead.entries], ahead.bytes

    assert run(go()) == (True, ["bb", "c"], 3)


def test_an_urgent_item_never_goes_before_an_earlier_one_with_the_same_key() -> None:
    async def go():
        items = [("a", 1), ("b", 1), ("a", 2), ("c", 2)]
        ahead = await filled(items, urgent={("a", 2), ("c", 2)}, key=lambda item: item[0])()
        return ahead.select(1), ahead.select(1), ahead.select(2)

    first, second, third = run(go())
    assert first == [("c", 2)]  # ("a", 2) waits for ("a", 1)
    assert second == [("a", 1)]
    assert third == [("b", 1), ("a", 2)]


def test_a_batch_stops_at_the_item_that_reaches_max_bytes() -> None:
    async def go():
        ahead = await filled(["aaaa", "bb", "cccccc", "d"], urgent={"cccccc"})()
        return ahead.select(10, max_bytes=8), ahead.select(10, max_bytes=8)

    assert run(go()) == (["aaaa", "cccccc"], ["bb", "d"])


def test_a_full_read_ahead_holds_the_reader_until_a_batch_is_taken() -> None:
    async def go():
        ahead = Lookahead(2, FirstThings(lambda item: False, 60.0))
        await ahead.put(0)
        await ahead.put(1)
        third = asyncio.ensure_future(ahead.put(2))
        await asyncio.sleep(0.01)
        held = not third.done()
        batch = ahead.select(2)
        await asyncio.wait_for(third, 1.0)
        return held, batch, [e.item for e in ahead.entries]

    assert run(go()) == (True, [0, 1], [2])


class Stream(FakeStream):
    """test_batching's stream, recording the offsets it acks."""

    async def ack(self, event):
        self.acked.append(event.message.offset)
        return True


def event(offset: int, key: str, partition: int = 0):
    message = SimpleNamespace(offset=offset, key=key.encode(), tp=("clean", partition), value=b"")
    return SimpleNamespace(message=message)


def test_events_taken_out_of_order_are_acked_in_the_order_they_were_read() -> None:
    events = [event(i, f"k{i}") for i in range(6)]
    urgent = {4, 5}

    async def go():
        first = FirstThings(lambda e: e.message.offset in urgent, 60.0, lambda e: e.message.key)
        stream = Stream(events)
        taken = take_batches_unacked(stream, 2, 1.0, first=first, lookahead=16)
        batches = []
        acks = []
        async for batch, ack in taken:
            batches.append([e.message.offset for e in batch])
            acks.append(ack)
            if len(batches) == 3:
                break
        after_first = []
        await acks[0]()  # the urgent batch, done first: nothing before it is acked yet
        after_first[:] = stream.acked
        await acks[2]()
        after_third = list(stream.acked)
        await acks[1]()
        return batches, after_first, after_third, stream.acked

    batches, after_first, after_third, acked = run(go())
    assert batches[0] == [4, 5]
    assert after_first == []
    assert after_third == []
    assert acked == [0, 1, 2, 3, 4, 5]


def test_each_partition_is_acked_in_order_on_its_own() -> None:
    events = [event(0, "a", 0), event(0, "b", 1), event(1, "c", 1)]

    async def go():
        first = FirstThings(lambda e: e.message.tp[1] == 1, 60.0, lambda e: e.message.key)
        stream = Stream(events)
        taken = take_batches_unacked(stream, 1, 1.0, first=first, lookahead=16)
        batch, ack = await taken.__anext__()
        await ack()
        await taken.aclose()
        return [e.message.tp for e in batch], stream.acked

    tps, acked = run(go())
    assert tps == [("clean", 1)]
    assert acked == [0]  # partition 1's offset 0, though partition 0's offset 0 is not done


def test_a_revoked_partition_s_events_read_ahead_are_dropped_and_never_acked() -> None:
    events = [event(0, "a", 0), event(0, "b", 1), event(1, "c", 0), event(1, "d", 1)]

    async def go():
        revocations = Revocations()
        first = FirstThings(lambda e: False, 60.0, lambda e: e.message.key)
        stream = Stream(events)
        taken = take_batches_unacked(
            stream, 1, 1.0, first=first, lookahead=16, revocations=revocations
        )
        batch, ack = await taken.__anext__()  # partition 0's offset 0
        revocations.revoked({("clean", 0)})  # a rebalance: partition 0 goes elsewhere
        rest = []
        for _ in range(2):
            more, more_ack = await taken.__anext__()
            rest.append([(e.message.tp[1], e.message.offset) for e in more])
            await more_ack()
        await ack()  # the batch in flight finishes: its partition is no longer ours
        await taken.aclose()
        return rest, stream.acked

    rest, acked = run(go())
    assert rest == [[(1, 0)], [(1, 1)]]  # partition 0's offset 1 was dropped
    assert acked == [0, 1]  # partition 1's two offsets; nothing of partition 0
