//! Crash recovery, layer 2 (STYLE.md §6): file surgery on a shut-down shard log.
//!
//! Each test writes a log through the engine, shuts it down, damages the files the way a
//! crash or a bad disk would (truncation, flipped bytes, appended garbage, lost or damaged
//! indexes, a half-created segment) and reopens. A torn tail must come back as exactly the
//! intact prefix, with appends continuing after it; damage anywhere else must be reported
//! as `Error::Corrupt` naming the file and byte, or, with `RecoveryMode::SkipCorrupt`, cost
//! exactly the damaged batch.

use std::path::{Path, PathBuf};

use shardline_engine::log::recovery::RecoveryMode;
use shardline_engine::log::{segment, ReadMode};
use shardline_engine::{
    CreateStream, Engine, EngineConfig, Error, Offset, SegmentId, Shard, ShardId,
};

use crate::harness::{
    self, assert_same, batch_ranges, close, config, contents, put_batch, read_all, segment_files,
    Snapshot,
};

const SHARD: ShardId = ShardId(0);

type Rec = (u64, Vec<u8>, Vec<u8>);

/// A shard log written through the engine and shut down.
struct Written {
    dir: tempfile::TempDir,
    shard_dir: PathBuf,
    /// The records of each batch (one put call each), in log order.
    batches: Vec<Vec<Rec>>,
}

impl Written {
    /// Records of every batch except those in `skip`, in order.
    fn records_without(&self, skip: &[usize]) -> Vec<Rec> {
        self.batches
            .iter()
            .enumerate()
            .filter(|(i, _)| !skip.contains(i))
            .flat_map(|(_, b)| b.iter().cloned())
            .collect()
    }

    fn all_records(&self) -> Vec<Rec> {
        self.records_without(&[])
    }

    /// Records of the first `n` batches.
    fn prefix(&self, n: usize) -> Vec<Rec> {
        self.batches[..n].iter().flatten().cloned().collect()
    }

    fn next_offset(&self) -> u64 {
        self.all_records().len() as u64
    }

    fn open(&self, config: EngineConfig) -> shardline_engine::Result<std::sync::Arc<Engine>> {
        harness::open(self.dir.path(), config)
    }

    /// The last segment file and the byte ranges of its batches.
    fn last_segment(&self) -> (PathBuf, Vec<std::ops::Range<usize>>) {
        let (_, path) = segment_files(&self.shard_dir).pop().unwrap();
        let ranges = batch_ranges(&std::fs::read(&path).unwrap());
        (path, ranges)
    }
}

/// Writes `batches` batches to shard 0 of stream `s`: batch `i` holds `records(i)`.
fn write_log(
    config: EngineConfig,
    batches: usize,
    records: impl Fn(usize) -> Vec<(String, Vec<u8>)>,
) -> Written {
    let dir = tempfile::tempdir().unwrap();
    let engine = harness::open(dir.path(), config).unwrap();
    let s = engine.create_stream(CreateStream::new("s", 1)).unwrap();
    let shard_dir = crate::harness::shard_dir(&s, SHARD);
    let mut written = Vec::new();
    for i in 0..batches {
        let recs = records(i);
        let refs: Vec<(&str, &[u8])> = recs.iter().map(|(k, d)| (&k[..], &d[..])).collect();
        let results = put_batch(&s, SHARD, &refs);
        written.push(
            results
                .iter()
                .zip(&recs)
                .map(|(r, (k, d))| {
                    (
                        r.sequence_number.offset().0,
                        k.clone().into_bytes(),
                        d.clone(),
                    )
                })
                .collect(),
        );
    }
    close(engine);
    Written {
        dir,
        shard_dir,
        batches: written,
    }
}

/// One to three records per batch, data of assorted sizes including empty.
fn varied(i: usize) -> Vec<(String, Vec<u8>)> {
    (0..=i % 3)
        .map(|j| {
            let len = (i * 37 + j * 11) % 70;
            (format!("key-{i}-{j}"), vec![(i * 3 + j) as u8; len])
        })
        .collect()
}

/// One record of 100 bytes per batch: every batch has the same length, and so does every
/// sealed segment.
fn uniform(i: usize) -> Vec<(String, Vec<u8>)> {
    vec![("k".to_string(), vec![i as u8; 100])]
}

fn shard_of(engine: &Engine) -> std::sync::Arc<Shard> {
    engine.stream("s").unwrap().shard(SHARD).unwrap()
}

/// Checks the reopened shard holds exactly `expected`, that an append continues at
/// `next_offset`, and that the appended record reads back.
fn check_recovered(engine: &Engine, expected: &[Rec], next_offset: u64, what: &str) {
    let s = engine.stream("s").unwrap();
    let shard = s.shard(SHARD).unwrap();
    assert_same(&contents(&read_all(&shard)), expected, what);
    assert_eq!(shard.next_offset(), Offset(next_offset), "{what}");
    let r = put_batch(&s, SHARD, &[("after", b"recovery")]);
    assert_eq!(r[0].sequence_number.offset(), Offset(next_offset), "{what}");
    let back = shard.read(Offset(next_offset), 10, 1 << 20).unwrap();
    assert_eq!(
        contents(&back.records),
        vec![(next_offset, b"after".to_vec(), b"recovery".to_vec())],
        "{what}"
    );
}

fn flip(path: &Path, pos: usize, mask: u8) {
    let mut b = std::fs::read(path).unwrap();
    b[pos] ^= mask;
    std::fs::write(path, b).unwrap();
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn truncating_the_final_batch_anywhere_recovers_the_intact_prefix() {
    let w = write_log(config(), 40, varied);
    let snap = Snapshot::take(&w.shard_dir);
    let (last, ranges) = w.last_segment();
    assert!(segment_files(&w.shard_dir).len() >= 2, "the log rolled");
    assert!(ranges.len() >= 3, "the last segment holds several batches");
    let fin = ranges.last().unwrap().clone();
    let intact = w.prefix(w.batches.len() - 1);
    for cut in fin.start..=fin.end {
        snap.restore();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&last)
            .unwrap()
            .set_len(cut as u64)
            .unwrap();
        let engine = w.open(config()).unwrap();
        let what = format!("segment cut at byte {cut}");
        if cut == fin.end {
            check_recovered(&engine, &w.all_records(), w.next_offset(), &what);
        } else {
            let s = engine.stream("s").unwrap();
            assert_same(
                &contents(&read_all(&s.shard(SHARD).unwrap())),
                &intact,
                &what,
            );
            assert_eq!(
                file_len(&last),
                fin.start as u64,
                "torn tail cut off: {what}"
            );
            check_recovered(&engine, &intact, intact.len() as u64, &what);
        }
        close(engine);
    }
}

#[test]
fn a_flipped_byte_anywhere_in_the_final_batch_recovers_the_intact_prefix() {
    let w = write_log(config(), 40, varied);
    let snap = Snapshot::take(&w.shard_dir);
    let (last, ranges) = w.last_segment();
    let fin = ranges.last().unwrap().clone();
    let intact = w.prefix(w.batches.len() - 1);
    for pos in fin.clone() {
        for mask in [0x01, 0xff] {
            snap.restore();
            flip(&last, pos, mask);
            let engine = w.open(config()).unwrap();
            let what = format!("byte {pos} ^ {mask:#x}");
            check_recovered(&engine, &intact, intact.len() as u64, &what);
            close(engine);
        }
    }
}

#[test]
fn a_flipped_byte_in_a_middle_batch_refuses_to_open_naming_the_file_and_byte() {
    let w = write_log(config(), 40, varied);
    let snap = Snapshot::take(&w.shard_dir);
    let (last, ranges) = w.last_segment();
    let mid = ranges[ranges.len() / 2].clone();
    for pos in mid.clone() {
        snap.restore();
        flip(&last, pos, 0x10);
        let e = w.open(config()).unwrap_err();
        let Error::Corrupt {
            path,
            offset,
            shard,
            ..
        } = &e
        else {
            panic!("flip at byte {pos}: expected Error::Corrupt, got {e}");
        };
        assert_eq!(path, &last, "byte {pos}");
        assert_eq!(*offset, mid.start as u64, "byte {pos}");
        assert_eq!(*shard, SHARD);
        let msg = e.to_string();
        assert!(msg.contains(&last.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("at byte {}", mid.start)), "{msg}");
    }
    // The refusal changed nothing: with the byte restored the log opens whole.
    snap.restore();
    let engine = w.open(config()).unwrap();
    check_recovered(&engine, &w.all_records(), w.next_offset(), "restored");
    close(engine);
}

#[test]
fn skip_corrupt_drops_exactly_the_damaged_middle_batch() {
    let w = write_log(config(), 40, varied);
    let snap = Snapshot::take(&w.shard_dir);
    let (last, ranges) = w.last_segment();
    let k = ranges.len() / 2;
    let mid = ranges[k].clone();
    let damaged = w.batches.len() - ranges.len() + k;
    let survivors = w.records_without(&[damaged]);
    let skip = || config().with_recovery(RecoveryMode::SkipCorrupt);
    for pos in mid.clone() {
        snap.restore();
        flip(&last, pos, 0x10);
        let what = format!("byte {pos}");
        let engine = w.open(skip()).unwrap();
        // Offsets are never reused: the damaged batch leaves a gap and appends continue
        // after the last record ever written.
        check_recovered(&engine, &survivors, w.next_offset(), &what);
        close(engine);
        // The damage was cut out of the file: the default mode now opens it too.
        let engine = w.open(config()).unwrap();
        let mut expected = survivors.clone();
        expected.push((w.next_offset(), b"after".to_vec(), b"recovery".to_vec()));
        assert_same(
            &contents(&read_all(&shard_of(&engine))),
            &expected,
            &format!("{what}, reopened"),
        );
        close(engine);
    }
}

#[test]
fn reads_step_over_the_gap_a_skipped_batch_leaves() {
    let w = write_log(config(), 40, varied);
    let (last, ranges) = w.last_segment();
    let k = ranges.len() / 2;
    let damaged = w.batches.len() - ranges.len() + k;
    flip(&last, ranges[k].start + 30, 0x10);
    let engine = w
        .open(config().with_recovery(RecoveryMode::SkipCorrupt))
        .unwrap();
    let shard = shard_of(&engine);
    let survivors = w.records_without(&[damaged]);
    // From every offset, including those inside the gap, a read returns the next survivors
    // and says where to continue.
    for from in 0..=w.next_offset() {
        let expected: Vec<Rec> = survivors
            .iter()
            .filter(|r| r.0 >= from)
            .take(2)
            .cloned()
            .collect();
        let out = shard.read(Offset(from), 2, usize::MAX).unwrap();
        assert_same(&contents(&out.records), &expected, &format!("from {from}"));
        if let Some(r) = expected.last() {
            assert_eq!(out.next, Offset(r.0 + 1), "from {from}");
        }
    }
    close(engine);
}

#[test]
fn garbage_after_the_last_batch_is_truncated() {
    let w = write_log(config(), 40, varied);
    let snap = Snapshot::take(&w.shard_dir);
    let (last, ranges) = w.last_segment();
    let end = ranges.last().unwrap().end;
    let replay = snap.bytes(&last)[ranges.last().unwrap().clone()].to_vec();
    let mut noise = Vec::new();
    let mut x: u32 = 0x9e37_79b9;
    for _ in 0..5000 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        noise.push(x as u8);
    }
    // A header that promises more bytes than the file holds.
    let mut long_header = replay[..batch_header_len()].to_vec();
    long_header[..4].copy_from_slice(&100_000u32.to_le_bytes());
    let cases: Vec<(String, Vec<u8>)> = vec![
        ("1 zero".into(), vec![0]),
        ("39 zeros".into(), vec![0; 39]),
        ("40 zeros".into(), vec![0; 40]),
        ("41 zeros".into(), vec![0; 41]),
        ("4096 zeros".into(), vec![0; 4096]),
        ("1 random byte".into(), noise[..1].to_vec()),
        ("17 random bytes".into(), noise[..17].to_vec()),
        ("1000 random bytes".into(), noise[..1000].to_vec()),
        ("5000 random bytes".into(), noise.clone()),
        ("a replay of the last batch".into(), replay.clone()),
        ("a header promising more".into(), long_header),
    ];
    for (what, garbage) in cases {
        snap.restore();
        let mut b = std::fs::read(&last).unwrap();
        b.extend_from_slice(&garbage);
        std::fs::write(&last, b).unwrap();
        let engine = w.open(config()).unwrap();
        assert_eq!(file_len(&last), end as u64, "{what}: truncated");
        check_recovered(&engine, &w.all_records(), w.next_offset(), &what);
        close(engine);
    }
}

fn batch_header_len() -> usize {
    shardline_engine::log::batch::HEADER_LEN
}

/// Everything a reader can observe of a shard: every record, reads from every offset with a
/// small limit, and the offset found for every arrival time.
fn observe(shard: &Shard) -> Vec<String> {
    let all = read_all(shard);
    let mut v = vec![format!("{:?}", contents(&all))];
    let end = shard.next_offset().0;
    for from in 0..=end {
        let out = shard.read(Offset(from), 3, 250).unwrap();
        v.push(format!("{from}: {:?} {}", contents(&out.records), out.next));
    }
    for r in &all {
        for t in [r.timestamp_ms - 1, r.timestamp_ms, r.timestamp_ms + 1] {
            v.push(format!("t{t}: {}", shard.offset_at_time(t).unwrap()));
        }
    }
    v
}

/// Something done to a file.
type Damage = Box<dyn Fn(&Path)>;

#[test]
fn a_missing_or_damaged_sealed_index_is_rebuilt_and_reads_are_unchanged() {
    let w = write_log(config(), 70, uniform);
    let segs = segment_files(&w.shard_dir);
    assert!(segs.len() >= 3, "two sealed segments at least");
    let idx = |i: usize| segment::index_path(&w.shard_dir, SegmentId(segs[i].0));
    assert_eq!(
        file_len(&segs[0].1),
        file_len(&segs[1].1),
        "uniform batches give sealed segments of one length"
    );
    let snap = Snapshot::take(&w.shard_dir);
    let engine = w.open(config()).unwrap();
    let reference = observe(&shard_of(&engine));
    close(engine);
    let original = snap.bytes(&idx(0)).to_vec();
    assert!(original.len() > 32 + 24, "the index has several entries");

    let mut cases: Vec<(String, Damage)> = vec![
        (
            "deleted".into(),
            Box::new(|p| std::fs::remove_file(p).unwrap()),
        ),
        (
            "emptied".into(),
            Box::new(|p| std::fs::write(p, b"").unwrap()),
        ),
        (
            "cut in half".into(),
            Box::new(|p| {
                let b = std::fs::read(p).unwrap();
                std::fs::write(p, &b[..b.len() / 2]).unwrap();
            }),
        ),
        (
            "one entry too many".into(),
            Box::new(|p| {
                let mut b = std::fs::read(p).unwrap();
                b.extend_from_slice(&[0; 24]);
                std::fs::write(p, b).unwrap();
            }),
        ),
        (
            "replaced by the index of another segment of the same length".into(),
            Box::new({
                let other = snap.bytes(&idx(1)).to_vec();
                move |p| std::fs::write(p, &other).unwrap()
            }),
        ),
    ];
    for pos in 0..original.len() {
        cases.push((
            format!("byte {pos} flipped"),
            Box::new(move |p| flip(p, pos, 0x04)),
        ));
    }
    for (what, damage) in cases {
        snap.restore();
        damage(&idx(0));
        let engine = w.open(config()).unwrap();
        assert_same(
            &observe(&shard_of(&engine)),
            &reference,
            &format!("index {what}"),
        );
        close(engine);
        assert_eq!(
            std::fs::read(idx(0)).unwrap(),
            original,
            "index {what}: rebuilt as it was"
        );
    }

    // Debris of interrupted index writes is removed; an index whose log is gone is ignored.
    snap.restore();
    let tmp = w
        .shard_dir
        .join(format!("{}.idx.tmp", SegmentId(segs[1].0)));
    std::fs::write(&tmp, b"half an index").unwrap();
    let orphan = segment::index_path(&w.shard_dir, SegmentId(1_000_000));
    std::fs::write(&orphan, &original).unwrap();
    let engine = w.open(config()).unwrap();
    assert_same(&observe(&shard_of(&engine)), &reference, "with debris");
    close(engine);
    assert!(!tmp.exists(), "{} removed", tmp.display());
}

#[test]
fn a_segment_shorter_than_its_header_is_recreated() {
    let w = write_log(config(), 40, varied);
    let snap = Snapshot::take(&w.shard_dir);
    let next = w.next_offset();
    let (_, last) = segment_files(&w.shard_dir).pop().unwrap();
    let header = segment::encode_header(SegmentId(next));
    // A crash while rolling: the new segment exists but its header is not (all) there.
    for len in 0..header.len() {
        snap.restore();
        // Make the current last segment sealed, as a roll would have.
        let torn = segment::log_path(&w.shard_dir, SegmentId(next));
        std::fs::write(&torn, &header[..len]).unwrap();
        let engine = w.open(config()).unwrap();
        let what = format!("new segment of {len} bytes");
        check_recovered(&engine, &w.all_records(), next, &what);
        close(engine);
        let b = std::fs::read(&torn).unwrap();
        assert_eq!(&b[..header.len()], &header[..], "{what}: header rewritten");
        assert!(last.exists());
    }
    // A crash while creating a shard's very first segment.
    for len in [0, 1, 31] {
        let dir = tempfile::tempdir().unwrap();
        let engine = harness::open(dir.path(), config()).unwrap();
        let s = engine.create_stream(CreateStream::new("s", 1)).unwrap();
        let shard_dir = crate::harness::shard_dir(&s, SHARD);
        drop(s);
        close(engine);
        let first = segment::log_path(&shard_dir, SegmentId(0));
        std::fs::write(&first, &segment::encode_header(SegmentId(0))[..len]).unwrap();
        let engine = harness::open(dir.path(), config()).unwrap();
        check_recovered(&engine, &[], 0, &format!("first segment of {len} bytes"));
        close(engine);
    }
}

#[test]
fn a_sealed_segment_damaged_in_the_middle_fails_reads_with_the_file_and_byte() {
    for mode in [ReadMode::Mmap, ReadMode::Pread] {
        let w = write_log(config().with_read_mode(mode), 70, uniform);
        let segs = segment_files(&w.shard_dir);
        let sealed = segs[0].1.clone();
        let ranges = batch_ranges(&std::fs::read(&sealed).unwrap());
        let k = ranges.len() / 2;
        let bad = ranges[k].clone();
        // A data byte: opening trusts the sealed segment's index and checks no CRC of it.
        flip(&sealed, bad.end - 10, 0x01);
        let engine = w.open(config().with_read_mode(mode)).unwrap();
        let shard = shard_of(&engine);
        let bad_offset = w.batches[k][0].0;
        let expect_corrupt = |r: shardline_engine::Result<_>, what: &str| match r {
            Err(Error::Corrupt { path, offset, .. }) => {
                assert_eq!(path, sealed, "{mode:?} {what}");
                assert_eq!(offset, bad.start as u64, "{mode:?} {what}");
            }
            Err(e) => panic!("{mode:?} {what}: expected Error::Corrupt, got {e}"),
            Ok(_) => panic!("{mode:?} {what}: a corrupt batch was read as data"),
        };
        expect_corrupt(
            shard.read(Offset(0), usize::MAX, usize::MAX).map(|_| ()),
            "read from 0",
        );
        expect_corrupt(
            shard.read(Offset(bad_offset), 1, 1).map(|_| ()),
            "read of the batch",
        );
        // Records before it, and everything from the next segment on, still read.
        let before = shard.read(Offset(0), k, usize::MAX).unwrap();
        assert_same(
            &contents(&before.records),
            &w.prefix(k),
            &format!("{mode:?} before"),
        );
        let next_segment = segs[1].0;
        let after = shard
            .read(Offset(next_segment), usize::MAX, usize::MAX)
            .unwrap();
        let later: Vec<Rec> = w
            .all_records()
            .into_iter()
            .filter(|r| r.0 >= next_segment)
            .collect();
        assert_same(
            &contents(&after.records),
            &later,
            &format!("{mode:?} after"),
        );
        let msg = shard
            .read(Offset(bad_offset), 1, 1)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(&sealed.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("at byte {}", bad.start)), "{msg}");
        close(engine);

        // Without its index the segment is scanned on open: refused, or skipped past.
        std::fs::remove_file(segment::index_path(&w.shard_dir, SegmentId(segs[0].0))).unwrap();
        match w.open(config()) {
            Err(Error::Corrupt { path, offset, .. }) => {
                assert_eq!((path, offset), (sealed.clone(), bad.start as u64));
            }
            other => panic!("expected Error::Corrupt, got {other:?}"),
        }
        let engine = w
            .open(config().with_recovery(RecoveryMode::SkipCorrupt))
            .unwrap();
        check_recovered(
            &engine,
            &w.records_without(&[k]),
            w.next_offset(),
            "skipped",
        );
        close(engine);
    }
}

/// Regression test for skip-corrupt recovery refusing to open: cutting the damaged batch
/// out of a sealed segment that held only that batch left a segment with no batch, which
/// open refused ("sealed segment holds no batch ... reopen with recovery mode
/// `skip-corrupt`", while in that mode). One-batch segments are common: a quiet shard's
/// segments roll by age. Skip-corrupt now removes the emptied segment.
#[test]
fn skip_corrupt_opens_a_sealed_segment_whose_only_batch_is_damaged() {
    let mut c = config();
    // Every batch fills a segment: each sealed segment holds exactly one batch, as with a
    // quiet shard whose segments roll by age.
    c.log.segment_max_bytes = 64;
    let w = write_log(c.clone(), 5, varied);
    let segs = segment_files(&w.shard_dir);
    assert_eq!(
        segs.len(),
        6,
        "five one-batch sealed segments and an empty active one"
    );
    for (damaged, (base, path)) in segs.iter().take(5).enumerate() {
        let snap = Snapshot::take(&w.shard_dir);
        let path = path.clone();
        flip(&path, segment::HEADER_LEN + 20, 0x01);
        std::fs::remove_file(segment::index_path(&w.shard_dir, SegmentId(*base))).unwrap();
        match w.open(c.clone()) {
            Err(Error::Corrupt { path: p, .. }) => assert_eq!(p, path),
            other => panic!("segment {damaged}: expected Error::Corrupt, got {other:?}"),
        }
        let engine = w
            .open(c.clone().with_recovery(RecoveryMode::SkipCorrupt))
            .unwrap_or_else(|e| panic!("segment {damaged}: skip-corrupt failed to open: {e}"));
        check_recovered(
            &engine,
            &w.records_without(&[damaged]),
            w.next_offset(),
            &format!("segment {damaged}"),
        );
        close(engine);
        let engine = w.open(c.clone()).unwrap();
        assert_eq!(shard_of(&engine).next_offset(), Offset(w.next_offset() + 1));
        close(engine);
        snap.restore();
    }
}

/// Regression test for an index trusted on its length alone: a sealed segment's `.idx` was
/// accepted if its checksum held and it described a log of the segment's length, so the
/// index of another segment of the same length (uniform batches make every sealed segment
/// the same length) was taken for this one's. The shard then started at the other
/// segment's first offset and records 0..27 silently disappeared from reads. Opening now
/// checks the index's first entry against the segment's first batch, and rebuilds.
#[test]
fn an_index_copied_from_another_segment_of_the_same_length_is_rebuilt() {
    let w = write_log(config(), 70, uniform);
    let segs = segment_files(&w.shard_dir);
    let idx = |i: usize| segment::index_path(&w.shard_dir, SegmentId(segs[i].0));
    assert_eq!(file_len(&segs[0].1), file_len(&segs[1].1));
    let original = std::fs::read(idx(0)).unwrap();
    std::fs::copy(idx(1), idx(0)).unwrap();
    let engine = w.open(config()).unwrap();
    let shard = shard_of(&engine);
    assert_eq!(
        shard.trim_offset(),
        Offset(0),
        "the shard still starts at 0"
    );
    assert_same(&contents(&read_all(&shard)), &w.all_records(), "records");
    let out = shard.read(Offset(5), 1, usize::MAX).unwrap();
    assert_eq!(out.records[0].offset, Offset(5));
    drop(shard);
    close(engine);
    assert_eq!(std::fs::read(idx(0)).unwrap(), original, "index rebuilt");
}

/// Regression test for reads going one batch too far: a read whose record limit was met
/// at the end of a batch went on to read (and checksum) the next batch before noticing,
/// so reading records that are intact failed with `Error::Corrupt` when the batch after
/// them was damaged, and every such read did a batch of extra I/O.
#[test]
fn a_read_that_fills_its_record_limit_stops_before_the_next_batch() {
    let w = write_log(config(), 70, uniform);
    let (_, sealed) = segment_files(&w.shard_dir).remove(0);
    let ranges = batch_ranges(&std::fs::read(&sealed).unwrap());
    // Batch 10 of the first (sealed, indexed) segment is damaged; batches are one record.
    flip(&sealed, ranges[10].end - 1, 0x01);
    for mode in [ReadMode::Mmap, ReadMode::Pread] {
        let engine = w.open(config().with_read_mode(mode)).unwrap();
        let shard = shard_of(&engine);
        for from in 0..10 {
            let n = 10 - from as usize;
            let out = shard.read(Offset(from), n, usize::MAX).unwrap();
            assert_same(
                &contents(&out.records),
                &w.prefix(10)[from as usize..],
                &format!("{mode:?}: {n} records from {from}"),
            );
            assert_eq!(out.next, Offset(10));
        }
        assert!(matches!(
            shard.read(Offset(0), 11, usize::MAX),
            Err(Error::Corrupt { .. })
        ));
        drop(shard);
        close(engine);
    }
}

/// Group commit writes the batches of several appends in one write, and a crash can keep
/// a later page of that write and lose an earlier one. None of its appends was
/// acknowledged, so damage anywhere in the last write is a torn tail, even when batches of
/// it after the damage survived: recovery keeps what precedes the damage and truncates.
#[test]
fn a_torn_group_commit_write_is_a_torn_tail_even_if_later_batches_survived() {
    let mut c = config();
    c.log.segment_max_bytes = 1 << 20;
    let dir = tempfile::tempdir().unwrap();
    let engine = harness::open(dir.path(), c.clone()).unwrap();
    let s = engine.create_stream(CreateStream::new("s", 1)).unwrap();
    let shard_dir = crate::harness::shard_dir(&s, SHARD);
    // Concurrent producers: appends arriving during a write share the next one.
    let writes = loop {
        let producers: Vec<_> = (0..8)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..25 {
                        put_batch(&s, SHARD, &[("k", format!("{t}-{i}").as_bytes())]);
                    }
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let (_, path) = segment_files(&shard_dir).pop().unwrap();
        let bytes = harness::read_log(&path);
        // Batches grouped by write: a write's first batch carries FLAG_WRITE_START.
        let mut writes: Vec<Vec<(std::ops::Range<usize>, u64)>> = Vec::new();
        for r in batch_ranges(&bytes) {
            let h = shardline_engine::log::batch::verify(&bytes[r.clone()]).unwrap();
            if h.flags & shardline_engine::log::batch::FLAG_WRITE_START != 0 {
                writes.push(Vec::new());
            }
            writes.last_mut().unwrap().push((r, h.base_offset.0));
        }
        if writes.iter().any(|w| w.len() >= 3) {
            break (path, bytes, writes);
        }
    };
    drop(s);
    close(engine);
    let (path, bytes, writes) = writes;
    let all = {
        let engine = harness::open(dir.path(), c.clone()).unwrap();
        let recs = contents(&read_all(&shard_of(&engine)));
        close(engine);
        recs
    };
    // The crash image: the log up to the end of a write of three batches or more (later
    // writes never happened), with one of that write's batches damaged.
    let w = writes.iter().find(|w| w.len() >= 3).unwrap();
    let end = w.last().unwrap().0.end;
    for (k, (range, base)) in w.iter().enumerate() {
        for pos in [range.start, range.start + 20, range.end - 1] {
            let mut image = bytes[..end].to_vec();
            image[pos] ^= 0x08;
            std::fs::write(&path, &image).unwrap();
            let engine = harness::open(dir.path(), c.clone()).unwrap();
            let kept: Vec<Rec> = all.iter().filter(|r| r.0 < *base).cloned().collect();
            let what = format!("batch {k} of {} in the last write, byte {pos}", w.len());
            check_recovered(&engine, &kept, *base, &what);
            close(engine);
        }
    }
}
