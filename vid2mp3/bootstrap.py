"""Build every dependency once per cold start; each can be handed in (a fake, in tests)."""

from __future__ import annotations

from dataclasses import dataclass

from vid2mp3.db.postgres import Postgres
from vid2mp3.objectstore import ObjectStore
from vid2mp3.queue import Publisher
from vid2mp3.settings import Settings, load_settings


@dataclass(frozen=True)
class Deps:
    settings: Settings
    db: Postgres
    store: ObjectStore
    publisher: Publisher


def bootstrap(
    settings: Settings | None = None,
    *,
    db: Postgres | None = None,
    store: ObjectStore | None = None,
    publisher: Publisher | None = None,
) -> Deps:
    """Production defaults for whatever is not given. Adapters connect lazily, on first use."""
    settings = settings or load_settings()
    if store is None:
        from vid2mp3.objectstore.gridfs import GridFSStore

        store = GridFSStore(settings.mongodb_uri, settings.mongodb_database)
    if publisher is None:
        from vid2mp3.queue.rabbitmq import RabbitMQPublisher

        publisher = RabbitMQPublisher(settings.rabbitmq_url)
    return Deps(settings=settings, db=db or Postgres(settings.database_url), store=store, publisher=publisher)
