"""Versions in the catalogue: which one is in force on a day, and the store's round trip."""

from dataclasses import replace
from datetime import date
from pathlib import Path

from intake.app import MIGRATIONS
from intake.models import CATALOGUE
from registry.catalogue import Catalogue
from services.db import make_engine, transaction
from services.migrations import upgrade

FILES = Catalogue.load()


def test_version_in_force_on_a_day() -> None:
    v1 = FILES.procedure("2.000488")
    assert v1 is not None and v1.effective_from is None
    v2 = replace(v1, version=2, fee_vnd=250000, effective_from=date(2026, 4, 1))
    v3 = replace(v1, version=3, fee_vnd=300000, effective_from=date(2027, 1, 1))
    cat = Catalogue(FILES.agencies.values(), [v3, v1, v2], [])
    fee = {d: p.fee_vnd for d in (date(2020, 1, 1), date(2026, 3, 31), date(2026, 4, 1),
                                  date(2027, 6, 1)) if (p := cat.procedure("2.000488", on=d))}
    assert fee == {date(2020, 1, 1): 200000, date(2026, 3, 31): 200000,
                   date(2026, 4, 1): 250000, date(2027, 6, 1): 300000}
    assert cat.procedure("2.000488").version == 3  # type: ignore[union-attr]
    future_only = Catalogue([], [replace(v1, effective_from=date(2030, 1, 1))], [])
    assert future_only.procedure("2.000488", on=date(2026, 1, 1)) is None


def test_district_of_follows_the_structure_of_the_day() -> None:
    commune = FILES.agency("000.01.30.H56")
    assert commune is not None
    assert FILES.district_of(commune, on=date(2025, 6, 30)) == "000.00.30.H56"
    office = FILES.resolve_office("ubnd-xa", near=FILES.agencies["000.00.20.H56"],
                                  on=date(2025, 7, 1))
    assert office is not None and office.valid_from == date(2025, 7, 1)


def test_store_round_trip_and_revision(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'intake.db'}")
    upgrade(engine, service="intake", script_location=MIGRATIONS)
    store = CATALOGUE
    with transaction(engine) as session:
        added = store.seed(session, FILES)
        assert len(added) == len(FILES.agencies) + len(FILES.procedures)
        assert store.seed(session, FILES) == []  # only an empty store is seeded
        first = store.revision(session)
    with transaction(engine) as session:
        loaded = store.catalogue(session)
        assert loaded.agencies == FILES.agencies and loaded.procedures == FILES.procedures
        v1 = loaded.procedures["1.001193"]
        store.put(session, [replace(v1, version=2, processing_days=1,
                                    effective_from=date(2026, 1, 1))])
        assert store.revision(session) != first
        again = store.catalogue(session)
        assert again.procedure("1.001193", on=date(2026, 1, 2)).processing_days == 1  # type: ignore[union-attr]
        assert again.procedure("1.001193", on=date(2025, 12, 31)).processing_days == 0  # type: ignore[union-attr]
