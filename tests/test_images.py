"""Item images: fetched from the simulator within the backfill, stored by content, served to the ERP."""

from __future__ import annotations

import hashlib
import os

import pytest
from sqlalchemy import text
from support import start_daemon
from support.sim import ADMIN

from tds_daemon import entities
from tds_daemon.pull import detail, images


@pytest.fixture
def images_env(pull_env, tmp_path):
    # Paced at 100 calls a minute, 60 items with their images would take a minute: lift the pace.
    return {**pull_env, "TDS_IMAGES_DIR": str(tmp_path / "images"), "TDS_ZOHO_REQUESTS_PER_MINUTE": "2000"}


@pytest.fixture
def itds(images_env):
    from support.pull import Tds

    t = Tds(images_env)
    yield t
    t.close()


def backfill(tds):
    return detail.Backfill(tds.config, tds.engine, tds.client("manual")).run(names=["product"])


def image_rows(engine) -> dict[str, dict]:
    with engine.connect() as c:
        return {r["zoho_id"]: dict(r) for r in c.execute(text("SELECT * FROM zoho.item_images")).mappings()}


def files(root: str) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, names in os.walk(root) for f in names)


def image_reads(sim) -> int:
    return sim.stats().get("entities", {}).get("product", {}).get("image", 0)


def with_image(sim) -> list[str]:
    """Items that have an image in Zoho (the list rows carry the image fields)."""
    return [row["item_id"] for row in sim.list_rows(entities.get("product")) if row.get("image_document_id")]


def test_images_are_stored_by_their_hash_once_and_not_fetched_again(sim, itds, engine):
    sim.reset(counts={"product": 60})
    assert itds.sync("product", "full")["status"] == "succeeded"
    having = with_image(sim)
    assert len(having) > 10
    report = backfill(itds)
    assert report.stopped == "done" and report.images_stored == len(having), report
    rows = image_rows(engine)
    root = itds.config.images.dir
    shas = set()
    for item_id in having:
        row = rows[item_id]
        data, content_type, sha = sim.image(item_id)
        assert row["sha256"] == sha == hashlib.sha256(data).hexdigest()
        assert (row["content_type"], row["bytes"], row["error"], row["deleted_at"]) == (content_type, len(data), None,
                                                                                       None)
        assert row["path"] == os.path.join(sha[:2], sha[2:4], sha)
        with open(os.path.join(root, row["path"]), "rb") as f:
            assert f.read() == data
        shas.add(sha)
    assert len(shas) < len(having), "the simulator's shared image is one file"
    assert len(files(root)) == len(shas) and not [f for f in files(root) if ".tmp-" in f]
    reads = image_reads(sim)
    assert reads == len(having)
    again = backfill(itds)
    assert again.images_stored == 0 and again.requests == 0 and image_reads(sim) == reads, "unchanged: not refetched"


def test_a_changed_image_is_fetched_again_and_a_removed_one_is_marked_and_its_file_pruned(sim, itds, engine):
    sim.reset(counts={"product": 30})
    assert itds.sync("product", "full")["status"] == "succeeded"
    backfill(itds)
    changed, removed = with_image(sim)[:2]
    old = image_rows(engine)
    sim.new_image(changed, "jpg")
    sim.remove_image(removed)
    assert itds.sync("product", "incremental")["status"] == "succeeded"
    assert images.backlog(itds.engine, "zoho") == 1
    report = backfill(itds)
    assert report.images_stored == 1, report
    rows = image_rows(engine)
    data, content_type, sha = sim.image(changed)
    assert rows[changed]["sha256"] == sha != old[changed]["sha256"] and content_type == "image/jpeg"
    assert rows[removed]["deleted_at"] is not None
    # The healer's retention removes files no live row names (once they are older than an hour).
    root = itds.config.images.dir
    for path in files(root):
        os.utime(path, (1, 1))
    orphans = {old[changed]["sha256"], old[removed]["sha256"]} - {r["sha256"] for r in rows.values()
                                                                   if r["deleted_at"] is None}
    assert images.prune_files(itds.engine, "zoho", root) == len(orphans)
    left = {os.path.basename(p) for p in files(root)}
    assert not orphans & left and sha in left


@pytest.mark.parametrize("fault,why", [("not_found", "no image for this item (404)"),
                                       ("not_an_image", "not an image"), ("html", "not an image"),
                                       ("oversized", "larger than images.max_bytes")])
def test_a_bad_image_answer_is_recorded_with_a_clear_error_and_not_fetched_again(sim, itds, engine, fault, why):
    sim.reset(counts={"product": 8})
    assert itds.sync("product", "full")["status"] == "succeeded"
    sim.faults(image_fault=fault)
    having = with_image(sim)
    report = backfill(itds)
    assert report.stopped == "done" and report.images_failed == len(having) and report.images_stored == 0, report
    rows = image_rows(engine)
    assert all(why in rows[i]["error"] and rows[i]["sha256"] is None for i in having), rows
    assert files(itds.config.images.dir) == []
    reads = image_reads(sim)
    assert backfill(itds).requests == 0 and image_reads(sim) == reads, "no loop"


def test_a_crash_mid_write_leaves_no_partial_file(tmp_path, monkeypatch):
    def crash(fd):
        raise OSError("the machine died here")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError):
        images.store_file(str(tmp_path), b"\x89PNG\r\n\x1a\n" + b"x" * 1000)
    assert files(str(tmp_path)) == [], "neither the file nor its temporary remains"


def test_the_api_serves_the_current_image_with_its_hash_as_etag(sim, itds, images_env, processes):
    sim.reset(counts={"product": 12})
    assert itds.sync("product", "full")["status"] == "succeeded"
    backfill(itds)
    daemon = start_daemon(processes, images_env)
    item = with_image(sim)[0]
    data, content_type, sha = sim.image(item)
    r = daemon.http.get(f"/api/tds/images/{item}", headers=ADMIN)
    assert r.status_code == 200 and r.content == data
    assert r.headers["content-type"] == content_type and r.headers["etag"] == f'"{sha}"'
    assert daemon.http.get(f"/api/tds/images/{item}", headers={**ADMIN, "If-None-Match": f'"{sha}"'}
                           ).status_code == 304
    assert daemon.http.get(f"/api/tds/images/{item}").status_code == 401
    without = next(o["id"] for o in sim.truth("product")["objects"] if o["id"] not in with_image(sim))
    r = daemon.http.get(f"/api/tds/images/{without}", headers=ADMIN)
    assert r.status_code == 404 and r.json()["error"] == "no_image"
    assert "tds_image_backlog 0.0" in daemon.http.get("/metrics").text
