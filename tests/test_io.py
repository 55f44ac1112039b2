"""Sharded writer and manifests: atomic shards, journal recovery after SIGKILL, no duplicates, lineage."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pyarrow as pa
import pytest

from distill.core.errors import DistillError
from distill.core.manifest import DirLock, find_stage, read_manifest, write_manifest
from distill.core.shards import ShardWriter, read_shards
from distill.core.stage_dirs import shard_paths

SCHEMA = pa.schema([("id", pa.string()), ("value", pa.int64())])


def rows(ids):
    return [{"id": str(i), "value": i} for i in ids]


def test_commits_shards_and_resumes_skipping_written_ids(tmp_path):
    with ShardWriter(tmp_path, "traces", SCHEMA, shard_rows=4) as w:
        for r in rows(range(10)):
            w.add(r)
    assert [p.name for p in shard_paths(tmp_path)] == [f"traces-0000{i}.parquet" for i in range(3)]
    w2 = ShardWriter(tmp_path, "traces", SCHEMA, shard_rows=4)
    assert w2.resumed_rows == 10 and "3" in w2 and "10" not in w2
    added = [w2.add(r) for r in rows(range(8, 14))]
    assert added == [False, False, True, True, True, True]
    w2.close()
    table = read_shards(tmp_path)
    assert sorted(table.column("id").to_pylist(), key=int) == [str(i) for i in range(14)]


def test_journal_recovers_uncommitted_rows_and_drops_torn_line(tmp_path):
    w = ShardWriter(tmp_path, "traces", SCHEMA, shard_rows=100)
    for r in rows(range(5)):
        w.add(r)
    w._close_journal()  # simulate death: nothing committed, journal on disk
    with open(tmp_path / ".traces.journal.jsonl", "a") as f:
        f.write('{"id": "99", "val')  # torn last line
    (tmp_path / ".traces-00007.parquet.tmp").write_bytes(b"half a shard")
    w2 = ShardWriter(tmp_path, "traces", SCHEMA, shard_rows=100)
    assert w2.recovered_rows == 5
    assert not list(tmp_path.glob("*.tmp"))
    w2.close()
    assert sorted(read_shards(tmp_path).column("id").to_pylist()) == [str(i) for i in range(5)]


def test_journal_rows_already_in_a_shard_are_not_duplicated(tmp_path):
    # death between the shard rename and the journal truncation: the journal repeats committed rows
    with ShardWriter(tmp_path, "traces", SCHEMA, shard_rows=3) as w:
        for r in rows(range(3)):
            w.add(r)
    (tmp_path / ".traces.journal.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows(range(5))))
    ShardWriter(tmp_path, "traces", SCHEMA).close()
    ids = read_shards(tmp_path).column("id").to_pylist()
    assert sorted(ids) == [str(i) for i in range(5)] and len(ids) == len(set(ids))


WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    import pyarrow as pa
    from distill.core.shards import ShardWriter
    schema = pa.schema([("id", pa.string()), ("value", pa.int64())])
    w = ShardWriter(sys.argv[1], "traces", schema, shard_rows=7)
    for i in range(int(sys.argv[2])):
        if str(i) in w:
            continue
        w.add({"id": str(i), "value": i})
        print(i, flush=True)  # the test kills on progress, not after a fixed sleep
        time.sleep(0.002)
    w.close()
    """
)


@pytest.mark.parametrize("kill_after_rows", [1, 7, 50, 200])  # mid-shard, at a shard boundary, later shards
def test_sigkill_at_any_moment_loses_nothing_and_duplicates_nothing(tmp_path, kill_after_rows):
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    out = tmp_path / "out"
    n = 400
    proc = subprocess.Popen([sys.executable, str(script), str(out), str(n)], stdout=subprocess.PIPE, text=True)
    for _ in range(kill_after_rows):  # the writer says each row it added
        assert proc.stdout.readline(), "the writer ended before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for shard in shard_paths(out):  # every committed shard is whole and readable
        assert pa.parquet.read_table(shard).num_rows > 0
    journal = out / ".traces.journal.jsonl"
    on_disk = sum(pa.parquet.read_table(s).num_rows for s in shard_paths(out)) + \
        (journal.read_text().count("\n") if journal.exists() else 0)
    assert kill_after_rows <= on_disk < n  # the kill landed mid-run, after what the writer had said it added
    subprocess.run([sys.executable, str(script), str(out), str(n)], check=True, stdout=subprocess.DEVNULL)
    ids = read_shards(out).column("id").to_pylist()
    assert len(ids) == len(set(ids)) == n


def test_manifest_lineage_goes_back_to_the_first_stage(tmp_path):
    gen, cur, model = tmp_path / "gen", tmp_path / "cur", tmp_path / "model"
    write_manifest(gen, "generate", {"teacher": "deepseek-r1"}, counts={"rows": 10})
    write_manifest(cur, "curate", {"filters": ["truncated"]}, inputs=[gen], counts={"kept": 7})
    write_manifest(model, "sft", {"lr": 1e-5}, inputs=[cur])
    m = read_manifest(model)
    assert [e["stage"] for e in m["lineage"]] == ["curate", "generate"]
    assert find_stage(m, "generate")["config"]["teacher"] == "deepseek-r1"
    assert m["inputs"][0]["manifest_sha256"] and m["status"] == "complete"
    assert "transformers" in m["versions"]


def test_missing_manifest_means_unknown_lineage_and_bad_one_is_an_error(tmp_path):
    write_manifest(tmp_path / "cur", "curate", {}, inputs=[tmp_path / "no_manifest_here"])
    assert read_manifest(tmp_path / "cur")["inputs"][0]["stage"] == "unknown"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{")
    with pytest.raises(DistillError, match="not valid JSON"):
        read_manifest(tmp_path / "bad")


def test_dir_lock_refuses_a_second_writer(tmp_path):
    with DirLock(tmp_path, "distill generate"):
        code = f"from distill.core.manifest import DirLock\nwith DirLock({str(tmp_path)!r}, 'x'): pass"
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert "is being written by" in res.stderr
    with DirLock(tmp_path, "distill generate"):  # released: taken again
        pass
