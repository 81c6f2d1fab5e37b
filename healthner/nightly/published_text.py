"""The text of the articles the nightly DAG published, as records for the `unlabeled` stage.

The warehouse keeps what the tagger found in an article (entities, counts, metadata), never the
article's text: that stays in the inbox files each night record names (`inbox_files`). So a
published day is read as its night recorded it (`read_day`: the articles of the recorded night),
and their text is read again from those inbox files, the same way staging read it (the first
accepted line of an id wins), keeping exactly the ids the night published, in inbox order. Each
text must still have the length the night published (`characters`): an inbox file gone, or an
article missing or changed in it, is an error naming it, never a silently smaller corpus.

`unlabeled.warehouse` picks the warehouse and the days: `start` and `end` inclusive, None for the
first and the latest published day. Each day is one source, `warehouse/dt=D/<night>`, so the
report counts it on its own and the silver data names the very night it learned from.
"""

from __future__ import annotations

from collections.abc import Iterator

from healthner.corpus.unlabeled import TextRecord
from healthner.errors import HealthnerError
from healthner.nightly.inbox import read_inbox
from healthner.nightly.warehouse import NIGHT_COLUMN, open_root, read_day, read_nights
from healthner.sections.corpus import UnlabeledWarehouseParams

SOURCE_PREFIX = "warehouse"


class PublishedTextError(HealthnerError):
    """The published articles cannot be read back whole: no warehouse, no day in range, an inbox file gone."""


def days_in_range(settings: UnlabeledWarehouseParams) -> dict[str, dict]:
    """The night record of every published day from `start` through `end` (both inclusive)."""
    warehouse = settings.warehouse_dir
    fs, root = open_root(warehouse)
    if not fs.isdir(root):
        raise PublishedTextError(f"unlabeled.warehouse.warehouse_dir {warehouse}: no such warehouse")
    nights = read_nights(warehouse)
    if not nights:
        raise PublishedTextError(f"unlabeled.warehouse.warehouse_dir {warehouse}: no day published yet")
    chosen = {dt: record for dt, record in nights.items()
              if (settings.start is None or dt >= settings.start) and (settings.end is None or dt <= settings.end)}
    if not chosen:
        published = sorted(nights)
        raise PublishedTextError(
            f"unlabeled.warehouse: no day published from {settings.start or 'the first'} through "
            f"{settings.end or 'the latest'} in {warehouse} (published: {published[0]} to {published[-1]})")
    return dict(sorted(chosen.items()))


def inbox_texts(files: list[str], dt: str, max_chars: int, max_id_chars: int) -> dict[str, str]:
    """article_id -> text of the accepted lines of the day's inbox files, in inbox order."""
    accepted: set[str] = set()
    texts: dict[str, str] = {}
    for path in files:
        fs, local = open_root(path)
        if not fs.isfile(local):
            raise PublishedTextError(f"{path}: inbox file of the published day {dt} not found; its articles' text "
                                     "lives only there (narrow unlabeled.warehouse.start / end to skip the day)")
        texts.update((a.article_id, a.text) for a in read_inbox(path, max_chars, accepted, max_id_chars).articles)
    return texts


def day_records(warehouse: str, dt: str, record: dict) -> Iterator[TextRecord]:
    """One record per article the day's recorded night published, its text read back from the inbox."""
    day = read_day(warehouse, dt)
    articles = day.tables["articles"]
    published = dict(zip(articles.column("article_id").to_pylist(), articles.column("characters").to_pylist()))
    if not published:
        return
    # the longest published text and id: every published line passes again, as it passed staging
    texts = inbox_texts(list(record["inbox_files"]), dt, max(published.values()), max(map(len, published)))
    unread = [article_id for article_id in published if len(texts.get(article_id, "")) != published[article_id]]
    if unread:
        raise PublishedTextError(
            f"{warehouse} dt={dt}: {len(unread)} published article(s), first {unread[0]!r}, no longer in the inbox files "
            f"{list(record['inbox_files'])} as published (missing, or another length): the inbox changed after publishing")
    source = f"{SOURCE_PREFIX}/dt={dt}/{record[NIGHT_COLUMN]}"
    kept = [article_id for article_id in texts if article_id in published]
    for number, article_id in enumerate(kept, start=1):
        yield TextRecord(source, number, (texts[article_id],))


def published_texts(settings: UnlabeledWarehouseParams) -> Iterator[TextRecord]:
    """The text of every article published on the chosen days, day by day; none while the source is
    off (`enabled: false`, the default). The days are checked before the first record is yielded,
    so a bad range or a missing warehouse fails before the stage reads anything else."""
    if not settings.enabled:
        return iter(())
    days = days_in_range(settings)

    def records() -> Iterator[TextRecord]:
        for dt, record in days.items():
            yield from day_records(settings.warehouse_dir, dt, record)

    return records()
