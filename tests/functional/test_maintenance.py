"""verify, gc, ls and du against in-process moto, on git histories made of committed pointer files."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from lfs_s3_agent.cli import main
from lfs_s3_agent.commands import gc as gc_mod
from lfs_s3_agent.commands.gc import gc, parse_duration, read_keep_from
from lfs_s3_agent.commands.inventory import du, inventory
from lfs_s3_agent.commands.verify import verify
from lfs_s3_agent.errors import ConfigError
from lfs_s3_agent.linked import LocalLinks, local_links_dir
from lfs_s3_agent.s3.keys import classify, link_key
from tests.functional.lfsrepo import BUCKET, LfsRepo, object_key, oid_of


@pytest.fixture
def repo(tmp_path: Path, s3: Any) -> LfsRepo:
    return LfsRepo(tmp_path / "repo", s3)


def rnd(n: int) -> bytes:
    return os.urandom(n)


# -- layout ----------------------------------------------------------------------------------------

def test_classify_accepts_only_our_layout_under_the_prefix() -> None:
    oid = oid_of(b"x")
    assert classify("p", object_key("p", oid)) == ("stored", oid)
    assert classify("p", link_key("p", oid)) == ("linked", oid)
    assert classify("", object_key("", oid)) == ("stored", oid)
    assert classify("p", f"p/{oid[0:2]}/{oid[2:4]}/{oid}.bak") is None
    assert classify("p", f"p/00/00/{oid}") is None  # fan-out directories must match the oid
    assert classify("p", f"p/{oid[0:2]}/{oid[2:4]}/{oid.upper()}") is None
    assert classify("p", f"other/{oid[0:2]}/{oid[2:4]}/{oid}") is None
    assert classify("p", f"p/sub/{oid[0:2]}/{oid[2:4]}/{oid}") is None
    assert classify("p", "p/.lfs-s3-agent-doctor-abc") is None


def test_durations_and_keep_from(tmp_path: Path) -> None:
    assert parse_duration("7d") == 7 * 86400
    assert parse_duration("12h") == 12 * 3600
    assert parse_duration("0") == 0
    assert parse_duration("2w") == 14 * 86400
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration("7 days")
    a, b = oid_of(b"a"), oid_of(b"b")
    keep = tmp_path / "keep.txt"
    keep.write_text(f"# kept for the fork\n{a} * data/a.bin\n\nsha256:{b}  # another\n")
    assert read_keep_from(str(keep)) == {a, b}
    keep.write_text(f"{a}\nnot-an-oid\n")
    with pytest.raises(ConfigError, match="line 2"):
        read_keep_from(str(keep))
    with pytest.raises(ConfigError, match="--keep-from"):
        read_keep_from(str(tmp_path / "absent.txt"))


# -- verify ----------------------------------------------------------------------------------------

def test_verify_head_all_present(repo: LfsRepo) -> None:
    repo.write("a.bin", rnd(1000))
    repo.write("dir/b.bin", rnd(2000))
    (repo.path / "plain.txt").write_text("not lfs\n")
    repo.commit("files")
    report = verify(cwd=repo.path, quiet=True)
    assert report.ok, report.render()
    assert (report.checked, report.stored, report.linked, report.bytes) == (2, 2, 0, 3000)


def test_verify_reports_missing_with_path_and_commit(repo: LfsRepo, s3: Any,
                                                     capsys: pytest.CaptureFixture[str],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    kept = repo.write("kept.bin", rnd(100))
    commit1 = repo.commit("one")
    lost = repo.write("sub/lost file.bin", rnd(300))
    commit2 = repo.commit("two")
    s3.delete_object(Bucket=BUCKET, Key=repo.key(lost.oid))
    report = verify(cwd=repo.path, quiet=True)
    assert not report.ok
    (problem,) = report.problems
    assert (problem.status, problem.pointer, problem.path) == ("missing", lost, "sub/lost file.bin")
    assert problem.commits == [(commit2, "sub/lost file.bin")]
    assert commit1 not in [c for c, _ in problem.commits]
    assert "git lfs push" in problem.fix
    assert kept not in [p.pointer for p in report.problems]

    monkeypatch.chdir(repo.path)
    assert main(["verify"]) == 1
    out = capsys.readouterr().out
    assert "MISSING: sub/lost file.bin" in out and commit2[:10] in out
    assert main(["verify", "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False
    assert data["problems"][0]["oid"] == lost.oid
    assert data["problems"][0]["commits"] == [{"commit": commit2, "path": "sub/lost file.bin"}]


def test_verify_finds_wrong_size_and_other_oid_and_deep_finds_changed_bytes(repo: LfsRepo, s3: Any) -> None:
    short = repo.write("short.bin", rnd(500))
    other = repo.write("other.bin", rnd(500))
    swapped = repo.write("swapped.bin", rnd(500))
    repo.commit("files")
    s3.put_object(Bucket=BUCKET, Key=repo.key(short.oid), Body=b"x" * 499, Metadata={"sha256": short.oid})
    s3.put_object(Bucket=BUCKET, Key=repo.key(other.oid), Body=b"x" * 500, Metadata={"sha256": oid_of(b"y")})
    s3.put_object(Bucket=BUCKET, Key=repo.key(swapped.oid), Body=b"z" * 500)  # same size, no metadata
    shallow = verify(cwd=repo.path, quiet=True)
    assert {p.pointer: p.status for p in shallow.problems} == {short: "corrupt", other: "corrupt"}
    assert "499 bytes" in next(p.detail for p in shallow.problems if p.pointer == short)
    assert "another oid" in next(p.detail for p in shallow.problems if p.pointer == other)
    deep = verify(cwd=repo.path, deep=True, quiet=True)
    assert {p.pointer: p.status for p in deep.problems} == {short: "corrupt", other: "corrupt", swapped: "corrupt"}
    assert oid_of(b"z" * 500) in next(p.detail for p in deep.problems if p.pointer == swapped)


def test_verify_deep_passes_intact_objects_including_ranged_ones(repo: LfsRepo) -> None:
    repo.write("small.bin", rnd(10_000))
    repo.write("large.bin", rnd(6 << 20))
    repo.commit("files")
    report = verify(cwd=repo.path, deep=True, quiet=True, flags={"multipart_threshold": "5MiB", "part_size": "5MiB"})
    assert report.ok, report.render()


def test_verify_all_and_revs_reach_other_branches_and_tags(repo: LfsRepo, s3: Any) -> None:
    repo.write("a.bin", rnd(100))
    repo.commit("base")
    repo.git("checkout", "-qb", "side")
    side = repo.write("side.bin", rnd(100))
    repo.commit("side")
    repo.git("tag", "t1")
    repo.git("checkout", "-q", "main")
    s3.delete_object(Bucket=BUCKET, Key=repo.key(side.oid))
    assert verify(cwd=repo.path, quiet=True).ok
    assert [p.pointer for p in verify(["side"], cwd=repo.path, quiet=True).problems] == [side]
    every = verify(all_refs=True, cwd=repo.path, quiet=True)
    assert [p.pointer for p in every.problems] == [side] and every.checked == 2
    with pytest.raises(ConfigError, match="not both"):
        verify(["main"], all_refs=True, cwd=repo.path)


def test_verify_in_a_repository_without_commits(repo: LfsRepo) -> None:
    report = verify(cwd=repo.path, quiet=True)
    assert report.ok and report.checked == 0 and "no commits" in report.note


def test_verify_linked_objects_original_present_changed_and_gone(repo: LfsRepo, s3: Any) -> None:
    s3.create_bucket(Bucket="source-data")
    data = rnd(3000)
    record = repo.link("linked.bin", data, "source-data", "tiles/t1.bin")
    repo.write("stored.bin", rnd(10))
    repo.commit("linked")
    report = verify(cwd=repo.path, quiet=True)
    assert report.ok, report.render()
    assert (report.stored, report.linked) == (1, 1)
    assert verify(cwd=repo.path, deep=True, quiet=True).ok

    s3.put_object(Bucket="source-data", Key="tiles/t1.bin", Body=rnd(3000))  # overwritten, same size
    (problem,) = verify(cwd=repo.path, quiet=True).problems  # no checksum: the content cannot be told apart
    assert problem.status == "changed-in-place" and problem.linked and "content not checked" in problem.detail
    assert record.url in problem.where
    (problem,) = verify(cwd=repo.path, deep=True, quiet=True).problems  # read: other bytes
    assert problem.status == "broken-link" and record.url in problem.where
    s3.put_object(Bucket="source-data", Key="tiles/t1.bin", Body=rnd(3000), ChecksumAlgorithm="SHA256")
    (problem,) = verify(cwd=repo.path, quiet=True).problems  # a checksum tells without reading
    assert problem.status == "broken-link" and "other content" in problem.detail

    s3.delete_object(Bucket="source-data", Key="tiles/t1.bin")
    (problem,) = verify(cwd=repo.path, quiet=True).problems
    assert problem.status == "broken-link" and "gone" in problem.detail


def test_verify_linked_by_version_and_a_deleted_version(repo: LfsRepo, s3: Any) -> None:
    s3.create_bucket(Bucket="versioned-src")
    s3.put_bucket_versioning(Bucket="versioned-src", VersioningConfiguration={"Status": "Enabled"})
    record = repo.link("v.bin", rnd(400), "versioned-src", "v.bin")
    assert record.version_id
    repo.commit("linked")
    s3.put_object(Bucket="versioned-src", Key="v.bin", Body=rnd(50))  # a newer version: ours still exists
    assert verify(cwd=repo.path, deep=True, quiet=True).ok
    s3.delete_object(Bucket="versioned-src", Key="v.bin", VersionId=record.version_id)
    (problem,) = verify(cwd=repo.path, quiet=True).problems
    assert problem.status == "broken-link"


def test_verify_local_link_not_yet_recorded_in_the_store(repo: LfsRepo, s3: Any) -> None:
    s3.create_bucket(Bucket="source-data")
    record = repo.link("l.bin", rnd(100), "source-data", "l.bin", record_in_store=False)
    repo.commit("linked")
    LocalLinks(local_links_dir(repo.path / ".git")).put(record)
    (problem,) = verify(cwd=repo.path, quiet=True).problems
    assert problem.status == "missing" and "link record" in problem.detail and "git push" in problem.fix
    s3.put_object(Bucket=BUCKET, Key=link_key(repo.prefix, record.oid), Body=record.to_json())
    assert verify(cwd=repo.path, quiet=True).ok


# -- gc --------------------------------------------------------------------------------------------

def history_with_garbage(repo: LfsRepo) -> dict[str, str]:
    """main: a.bin (v1 -> v2); tag v1 keeps a tag-only object; a deleted branch left garbage."""
    oids = {}
    oids["a_v1"] = repo.write("a.bin", rnd(1000)).oid
    oids["tagged"] = repo.write("tagged.bin", rnd(1100)).oid
    repo.commit("v1")
    repo.git("tag", "v1")
    oids["a_v2"] = repo.write("a.bin", rnd(1200)).oid
    (repo.path / "tagged.bin").unlink()
    repo.commit("v2")
    oids["orphan1"] = repo.store(rnd(1300))  # pushed from a branch that was deleted
    oids["orphan2"] = repo.store(rnd(1400))
    return oids


def test_gc_dry_run_by_default_lists_and_deletes_nothing(repo: LfsRepo, s3: Any) -> None:
    oids = history_with_garbage(repo)
    s3.put_object(Bucket=BUCKET, Key="repo/notes/readme.txt", Body=b"someone else's")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/x", Body=b"outside the prefix")
    before = repo.all_keys()
    report = gc(cwd=repo.path, grace="0", allow_short_grace=True, quiet=True)
    assert report.dry_run
    assert {e.oid for e in report.candidates} == {oids["orphan1"], oids["orphan2"]}
    assert [f.key for f in report.foreign] == ["repo/notes/readme.txt"]
    assert report.kept_referenced == 3 and report.referenced == 3
    assert repo.all_keys() == before
    text = "\n".join(report.render())
    assert "would delete 2 objects" in text and "foreign keys, left alone: 1" in text and "--force" in text


def test_gc_force_deletes_unreferenced_keeps_tagged_foreign_and_young(repo: LfsRepo, s3: Any) -> None:
    oids = history_with_garbage(repo)
    s3.put_object(Bucket=BUCKET, Key="repo/notes/readme.txt", Body=b"someone else's")
    s3.put_object(Bucket=BUCKET, Key="elsewhere/x", Body=b"outside the prefix")
    young = gc(cwd=repo.path, force=True, quiet=True)  # default grace 7d: everything was just uploaded
    assert young.deleted == [] and young.kept_young == 2

    report = gc(cwd=repo.path, force=True, quiet=True, now=datetime.now(UTC) + timedelta(days=8))
    assert {e.oid for e in report.deleted} == {oids["orphan1"], oids["orphan2"]}
    assert report.complete and report.exit_status == 0
    keys = repo.all_keys()
    assert keys == {repo.key(oids[k]) for k in ("a_v1", "a_v2", "tagged")} | {"repo/notes/readme.txt",
                                                                              "elsewhere/x"}
    assert sum(e.stored_bytes for e in report.deleted) == 1300 + 1400
    assert "2.6 KiB reclaimed" in "\n".join(report.render())


def test_gc_keeps_reflog_and_keep_from_oids_and_deletes_link_records(repo: LfsRepo, s3: Any,
                                                                     tmp_path: Path) -> None:
    repo.write("a.bin", rnd(100))
    repo.commit("one")
    reset_away = repo.write("b.bin", rnd(200)).oid
    repo.commit("two")
    repo.git("reset", "-q", "--hard", "HEAD~1")  # only the reflog still reaches "two"
    shared = repo.store(rnd(300))
    s3.create_bucket(Bucket="source-data")
    dropped = repo.link("gone.bin", rnd(50), "source-data", "gone.bin")  # record in the store, never committed
    (repo.path / "gone.bin").unlink()
    keep = tmp_path / "keep.txt"
    keep.write_text(f"# the fork uses it\n{shared}\n")
    report = gc(cwd=repo.path, force=True, grace="0", allow_short_grace=True, keep_from=str(keep), quiet=True)
    assert [(e.kind, e.oid) for e in report.deleted] == [("linked", dropped.oid)]
    assert report.kept_from_file == 1
    assert repo.key(reset_away) in repo.all_keys() and repo.key(shared) in repo.all_keys()


def test_gc_budget_stops_before_exceeding_then_a_second_run_finishes(repo: LfsRepo, s3: Any,
                                                                     monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    repo.write("a.bin", rnd(10))
    repo.commit("one")
    garbage = {repo.store(rnd(100 + i)) for i in range(5)}
    monkeypatch.setattr(gc_mod, "DELETE_BATCH", 2)
    calls: list[str] = []
    real_open = gc_mod.open_store

    def counting_open(*args: Any, **kwargs: Any) -> Any:
        ctx = real_open(*args, **kwargs)
        ctx.store.client.raw.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
        return ctx

    monkeypatch.setattr(gc_mod, "open_store", counting_open)
    monkeypatch.chdir(repo.path)
    # 1 listing + 1 upload listing + 2 batches (each: the keep markers read again, then the delete) = 6;
    # the third batch would need the 7th request.
    assert main(["gc", "--force", "--grace", "0", "--allow-short-grace", "--max-requests", "6"]) == gc_mod.BUDGET_EXIT
    captured = capsys.readouterr()
    assert "budget reached: deleted 4 of 5" in captured.err and "run again to continue" in captured.err
    assert len(calls) == 6 and calls.count("DeleteObjects") == 2
    left = [oid for oid in garbage if repo.key(oid) in repo.all_keys()]
    assert len(left) == 1

    calls.clear()
    assert main(["gc", "--force", "--grace", "0", "--allow-short-grace", "--max-requests", "6", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [d["oid"] for d in data["deleted"]] == left and data["complete"] and data["requests"] == 4
    assert len(calls) == 4
    assert not any(repo.key(oid) in repo.all_keys() for oid in garbage)


def test_gc_budget_reached_while_listing_deletes_nothing(repo: LfsRepo) -> None:
    repo.write("a.bin", rnd(10))
    repo.commit("one")
    repo.store(rnd(100))
    before = repo.all_keys()
    report = gc(cwd=repo.path, force=True, grace="0", allow_short_grace=True, max_requests=1, quiet=True)
    assert report.exit_status == gc_mod.BUDGET_EXIT and "while listing" in report.stopped
    assert repo.all_keys() == before


def test_gc_aborts_our_stale_multipart_uploads_only(repo: LfsRepo, s3: Any) -> None:
    repo.write("a.bin", rnd(10))
    repo.commit("one")
    ours = s3.create_multipart_upload(Bucket=BUCKET, Key=repo.key(oid_of(b"partial")))["UploadId"]
    s3.create_multipart_upload(Bucket=BUCKET, Key="repo/foreign/big.iso")
    s3.create_multipart_upload(Bucket=BUCKET, Key=object_key("other-repo", oid_of(b"p")))
    dry = gc(cwd=repo.path, grace="1d", quiet=True)  # moto dates every upload 2010
    assert [u.upload_id for u in dry.stale_uploads] == [ours]
    assert "would abort 1 unfinished multipart upload" in "\n".join(dry.render())
    report = gc(cwd=repo.path, force=True, grace="1d", quiet=True)
    assert [u.upload_id for u in report.aborted] == [ours]
    left = {u["Key"] for u in s3.list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])}
    assert left == {"repo/foreign/big.iso", object_key("other-repo", oid_of(b"p"))}


def test_gc_refuses_when_no_ref_references_anything(repo: LfsRepo) -> None:
    (repo.path / "plain.txt").write_text("x\n")
    repo.commit("no lfs here")
    repo.store(rnd(10))
    with pytest.raises(ConfigError, match="refusing to delete everything"):
        gc(cwd=repo.path, force=True, grace="0", allow_short_grace=True)


def test_gc_refuses_unfetched_remote_refs_and_shallow_clones(repo: LfsRepo, s3: Any, tmp_path: Path) -> None:
    repo.write("a.bin", rnd(10))
    repo.commit("one")
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(repo.path), str(remote)], check=True)
    other = LfsRepo(tmp_path / "other", s3, init=False)
    subprocess.run(["git", "clone", "-q", str(remote), str(other.path)], check=True)
    other.write("new.bin", rnd(20))
    other.commit("pushed from elsewhere")
    other.git("push", "-q", "origin", "HEAD:refs/heads/feature")
    repo.git("remote", "add", "origin", str(remote))
    repo.git("fetch", "-q", "origin", "main")

    with pytest.raises(ConfigError, match=r"has not fetched.*refs/heads/feature"):
        gc(cwd=repo.path, force=True, grace="0", allow_short_grace=True)
    dry = gc(cwd=repo.path, grace="0", allow_short_grace=True, quiet=True)
    assert any("refs/heads/feature" in w for w in dry.warnings)
    repo.git("fetch", "-q", "origin")
    assert gc(cwd=repo.path, force=True, grace="0", allow_short_grace=True, quiet=True).complete

    shallow = LfsRepo(tmp_path / "shallow", s3, init=False)
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{remote}", str(shallow.path)], check=True)
    shallow.git("config", "lfs-s3-agent.bucket", BUCKET)
    with pytest.raises(ConfigError, match="shallow"):
        gc(cwd=shallow.path, grace="0", allow_short_grace=True)


# -- ls / du ---------------------------------------------------------------------------------------

def test_ls_and_du(repo: LfsRepo, s3: Any, capsys: pytest.CaptureFixture[str],
                   monkeypatch: pytest.MonkeyPatch) -> None:
    old = repo.write("a.bin", rnd(1000)).oid
    repo.commit("v1")
    new = repo.write("a.bin", rnd(2000)).oid
    s3.create_bucket(Bucket="source-data")
    linked = repo.link("data/linked.bin", rnd(5000), "source-data", "big.bin")
    repo.commit("v2")
    stray = repo.link("x.bin", rnd(700), "source-data", "stray.bin")  # recorded, not in HEAD
    (repo.path / "x.bin").unlink()
    s3.put_object(Bucket=BUCKET, Key="repo/README", Body=b"hello")

    inv = inventory(cwd=repo.path, quiet=True)
    rows = {(e.kind, e.oid): e for e in inv.entries}
    assert set(rows) == {("stored", old), ("stored", new), ("linked", linked.oid), ("linked", stray.oid)}
    assert inv.in_head(new) and not inv.in_head(old) and inv.in_head(linked.oid) and not inv.in_head(stray.oid)
    assert rows[("linked", stray.oid)].size == 700 and rows[("linked", stray.oid)].source == stray.describe()
    assert rows[("stored", old)].size == 1000
    assert [f.key for f in inv.foreign] == ["repo/README"]

    usage = du(cwd=repo.path, quiet=True)
    assert usage.stored == {"count": 2, "bytes": 3000, "head_count": 1, "head_bytes": 2000}
    assert usage.linked["count"] == 2 and usage.linked["head_count"] == 1 and usage.linked["head_bytes"] == 5000
    assert usage.foreign == {"count": 1, "bytes": 5}
    assert usage.head_objects == 2 and usage.head_missing == 0

    monkeypatch.chdir(repo.path)
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    line = next(ln for ln in out.splitlines() if new in ln)
    assert "stored" in line and "HEAD" in line and "a.bin" in line
    assert any(old in ln and " - " in ln for ln in out.splitlines())
    assert main(["ls", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    by_oid = {(r["kind"], r["oid"]): r for r in data["objects"]}
    assert by_oid[("linked", linked.oid)]["path"] == "data/linked.bin"
    assert by_oid[("linked", linked.oid)]["in_head"] is True
    assert main(["du", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stored"]["bytes"] == 3000
    assert main(["du"]) == 0
    assert "referenced by HEAD" in capsys.readouterr().out


def test_ls_outside_a_repository_lists_without_head_column(tmp_path: Path, s3: Any) -> None:
    repo = LfsRepo(tmp_path / "nowhere", s3, init=False)
    repo.path.mkdir()
    oid = repo.store(b"abc")
    inv = inventory({"bucket": BUCKET, "prefix": "repo"}, cwd=repo.path, quiet=True)
    assert [e.oid for e in inv.entries] == [oid] and inv.in_head(oid) is None
    usage = du({"bucket": BUCKET, "prefix": "repo"}, cwd=repo.path, quiet=True)
    assert usage.head_objects is None and usage.stored["count"] == 1


# -- gc and pushes cannot race into data loss ------------------------------------------------------------

def test_a_push_that_skips_an_old_object_protects_it_from_gc(repo: LfsRepo, s3: Any,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from lfs_s3_agent import store as store_mod
    from lfs_s3_agent.commands import common
    from lfs_s3_agent.progress import ProgressReporter
    from lfs_s3_agent.s3.keys import keep_key
    from lfs_s3_agent.s3.listing import Listing
    from lfs_s3_agent.settings import Settings
    from lfs_s3_agent.store import S3Store

    repo.write("a.bin", rnd(10))
    repo.commit("one")
    data = rnd(300)
    oid = repo.store(data)  # unreferenced by any ref: pushed by a push whose ref has not moved yet
    monkeypatch.setattr(store_mod, "MIN_GRACE", 0.0)  # every stored object counts as old
    path = repo.path / "obj"
    path.write_bytes(data)
    store = S3Store(Settings(bucket=BUCKET, prefix="repo"))
    assert store.upload(oid, len(data), path, ProgressReporter(len(data), lambda a, b: None)) is False  # skipped
    assert keep_key("repo", oid) in repo.all_keys()

    # gc's listing predates the marker, and dates the object long ago: only the markers read just before the
    # delete request can save it.
    real_list = common.Context.list

    def listed_before_the_push(self: Any, *args: Any, **kwargs: Any) -> Listing:
        listing = real_list(self, *args, **kwargs)
        listing.entries = [e for e in listing.entries if e.kind != "keep"]
        for e in listing.entries:
            e.last_modified = datetime(2010, 1, 1, tzinfo=UTC)
        return listing

    monkeypatch.setattr(common.Context, "list", listed_before_the_push)
    report = gc(cwd=repo.path, force=True, grace="7d", quiet=True)
    assert oid not in {e.oid for e in report.deleted}
    assert repo.key(oid) in repo.all_keys()


def test_gc_deletes_an_unreferenced_old_object_without_a_marker(repo: LfsRepo, s3: Any,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The same set-up without the push's marker: the object goes (the test above can fail)."""
    from lfs_s3_agent.commands import common
    from lfs_s3_agent.s3.listing import Listing

    repo.write("a.bin", rnd(10))
    repo.commit("one")
    oid = repo.store(rnd(300))
    real_list = common.Context.list

    def old(self: Any, *args: Any, **kwargs: Any) -> Listing:
        listing = real_list(self, *args, **kwargs)
        for e in listing.entries:
            e.last_modified = datetime(2010, 1, 1, tzinfo=UTC)
        return listing

    monkeypatch.setattr(common.Context, "list", old)
    report = gc(cwd=repo.path, force=True, grace="7d", quiet=True)
    assert oid in {e.oid for e in report.deleted}


def test_a_grace_under_an_hour_needs_allow_short_grace(repo: LfsRepo) -> None:
    repo.write("a.bin", rnd(10))
    repo.commit("one")
    with pytest.raises(ConfigError, match="--allow-short-grace"):
        gc(cwd=repo.path, grace="30m", quiet=True)
