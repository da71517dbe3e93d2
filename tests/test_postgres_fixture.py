"""The throwaway PostgreSQL cluster the scale-out tests use really answers SQL on loopback."""

from __future__ import annotations


def test_cluster_answers(postgres_url):
    import sqlalchemy as sa

    assert postgres_url.startswith("postgresql://postgres@127.0.0.1:")
    engine = sa.create_engine(postgres_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select 1 + 1")).scalar() == 2
    engine.dispose()
