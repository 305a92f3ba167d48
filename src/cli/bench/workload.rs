//! What the producers send: record sizes, partition keys, the payload (a send timestamp
//! then random filler), and the open-loop schedule of batch send times.
//!
//! Every record of at least [`STAMP_BYTES`] starts with the magic `SLB1` and the intended
//! send time (u64 little-endian nanoseconds since the Unix epoch), so any consumer of the
//! stream can measure send-to-receipt latency without talking to the producer.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use tokio::sync::mpsc;

/// The magic that marks a record made by `shardline bench`.
const MAGIC: &[u8; 4] = b"SLB1";
/// Bytes of the magic and the send timestamp at the start of a record.
pub const STAMP_BYTES: usize = MAGIC.len() + size_of::<u64>();
/// Base64 characters of the stamp (12 bytes: no padding, and what follows it encodes on
/// its own, so a record's base64 is the stamp's followed by the filler's).
pub const STAMP_BASE64_CHARS: usize = STAMP_BYTES / 3 * 4;
/// Largest record size accepted: the Kinesis data limit (1 MiB, PutRecords reference).
const MAX_RECORD_BYTES: usize = 1 << 20;

/// Record sizes: `100` or `fixed:100`, `uniform:50-500`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordSize {
    Fixed(usize),
    Uniform { min: usize, max: usize },
}

impl RecordSize {
    /// Parses the `--record-size` syntax.
    ///
    /// # Errors
    /// A message naming what is wrong.
    pub fn parse(s: &str) -> Result<RecordSize, String> {
        let num = |v: &str| -> Result<usize, String> {
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| format!("'{v}' is not a byte count"))?;
            if n == 0 || n > MAX_RECORD_BYTES {
                return Err(format!("record size {n} is not in 1..={MAX_RECORD_BYTES}"));
            }
            Ok(n)
        };
        let size = match s.split_once(':') {
            None => RecordSize::Fixed(num(s)?),
            Some(("fixed", n)) => RecordSize::Fixed(num(n)?),
            Some(("uniform", range)) => {
                let (a, b) = range
                    .split_once('-')
                    .ok_or_else(|| format!("uniform needs MIN-MAX, got '{range}'"))?;
                let (min, max) = (num(a)?, num(b)?);
                if min > max {
                    return Err(format!("uniform:{min}-{max}: MIN is above MAX"));
                }
                RecordSize::Uniform { min, max }
            }
            Some((kind, _)) => {
                return Err(format!(
                    "unknown size distribution '{kind}' (fixed:N or uniform:MIN-MAX)"
                ))
            }
        };
        Ok(size)
    }

    /// The largest size this distribution yields.
    pub fn max(self) -> usize {
        match self {
            RecordSize::Fixed(n) | RecordSize::Uniform { max: n, .. } => n,
        }
    }

    /// The mean size.
    pub fn mean(self) -> f64 {
        match self {
            RecordSize::Fixed(n) => n as f64,
            RecordSize::Uniform { min, max } => (min + max) as f64 / 2.0,
        }
    }

    /// Draws one size.
    pub fn sample(self, rng: &mut StdRng) -> usize {
        match self {
            RecordSize::Fixed(n) => n,
            RecordSize::Uniform { min, max } => rng.gen_range(min..=max),
        }
    }
}

impl std::fmt::Display for RecordSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RecordSize::Fixed(n) => write!(f, "{n}"),
            RecordSize::Uniform { min, max } => write!(f, "uniform:{min}-{max}"),
        }
    }
}

/// Makes one producer's records: sizes, keys and payloads.
pub struct RecordMaker {
    size: RecordSize,
    keys: Vec<String>,
    /// The keys as JSON strings, for request bodies encoded ahead.
    keys_json: Vec<Vec<u8>>,
    next_key: usize,
    /// Random bytes (incompressible), sliced for each record's filler; a multiple of 3
    /// long.
    filler: Vec<u8>,
    /// Base64 of `filler`: a record's base64 is sliced from it, not encoded.
    filler_base64: Vec<u8>,
    rng: StdRng,
}

/// The base64 of a record's stamp.
pub fn stamp_base64(sent_ns: u64) -> [u8; STAMP_BASE64_CHARS] {
    let mut stamp = [0u8; STAMP_BYTES];
    stamp[..MAGIC.len()].copy_from_slice(MAGIC);
    stamp[MAGIC.len()..].copy_from_slice(&sent_ns.to_le_bytes());
    let mut out = [0u8; STAMP_BASE64_CHARS];
    BASE64
        .encode_slice(stamp, &mut out)
        .expect("invariant: 16 characters hold the base64 of 12 bytes");
    out
}

impl RecordMaker {
    /// A maker for producer `producer`, cycling through `key_count` partition keys
    /// (`k0`..), starting at a different key per producer.
    pub fn new(producer: usize, size: RecordSize, key_count: usize) -> RecordMaker {
        let mut rng = StdRng::seed_from_u64(0x5eed ^ producer as u64);
        let mut filler = vec![0u8; size.max().div_ceil(3) * 3];
        rng.fill_bytes(&mut filler);
        let keys: Vec<String> = (0..key_count.max(1)).map(|k| format!("k{k}")).collect();
        let keys_json = keys
            .iter()
            .map(|k| serde_json::to_vec(k).expect("invariant: a string serializes to JSON"))
            .collect();
        RecordMaker {
            size,
            keys,
            keys_json,
            next_key: producer * 7919,
            filler_base64: BASE64.encode(&filler).into_bytes(),
            filler,
            rng,
        }
    }

    /// The next record's partition key as a JSON string.
    pub fn key_json(&mut self) -> &[u8] {
        self.next_key = (self.next_key + 1) % self.keys.len();
        &self.keys_json[self.next_key]
    }

    /// Appends the base64 of the next record's data (the same bytes [`RecordMaker::data`]
    /// makes) to `out`, with the stamp given as [`stamp_base64`]; returns the record's
    /// size in bytes.
    pub fn data_base64(&mut self, stamp: &[u8; STAMP_BASE64_CHARS], out: &mut Vec<u8>) -> usize {
        let size = self.size.sample(&mut self.rng);
        let fill = if size >= STAMP_BYTES {
            out.extend_from_slice(stamp);
            size - STAMP_BYTES
        } else {
            size
        };
        let whole = fill / 3;
        out.extend_from_slice(&self.filler_base64[..whole * 4]);
        let tail = &self.filler[whole * 3..fill];
        if !tail.is_empty() {
            let mut buf = [0u8; 4];
            let n = BASE64
                .encode_slice(tail, &mut buf)
                .expect("invariant: 4 characters hold the base64 of 2 bytes");
            out.extend_from_slice(&buf[..n]);
        }
        size
    }

    /// The next record's partition key.
    pub fn key(&mut self) -> &str {
        self.next_key = (self.next_key + 1) % self.keys.len();
        &self.keys[self.next_key]
    }

    /// Writes the next record's data, stamped with `sent_ns`, into `out` (cleared first).
    pub fn data(&mut self, sent_ns: u64, out: &mut Vec<u8>) {
        let size = self.size.sample(&mut self.rng);
        out.clear();
        if size >= STAMP_BYTES {
            out.extend_from_slice(MAGIC);
            out.extend_from_slice(&sent_ns.to_le_bytes());
            out.extend_from_slice(&self.filler[..size - STAMP_BYTES]);
        } else {
            out.extend_from_slice(&self.filler[..size]);
        }
    }
}

/// The send time stamped in a record made by [`RecordMaker`], if it is one.
pub fn stamp_of(data: &[u8]) -> Option<u64> {
    if data.len() < STAMP_BYTES || &data[..MAGIC.len()] != MAGIC {
        return None;
    }
    let mut ns = [0u8; 8];
    ns.copy_from_slice(&data[MAGIC.len()..STAMP_BYTES]);
    Some(u64::from_le_bytes(ns))
}

/// Nanoseconds since the Unix epoch now.
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// When each batch of one producer is meant to go out.
///
/// With a rate, batch k is due at `start + (k + phase) * batch / rate` whether or not earlier
/// batches were answered (open loop): a slow server makes batches late, and their latency
/// counts from when they were due, so waiting is not hidden (no coordinated omission).
/// Without a rate, a batch is due when the producer gets to it.
///
/// With a rate, a pacer thread sleeps until each due time and hands it to the producer.
/// tokio's timer would do, but it has millisecond granularity and rounds deadlines up:
/// batches went out 0.8 to 1.1 ms late at the median, and that lateness, which is the
/// bench's and not the server's, was added to every latency. A thread's `nanosleep`
/// wakes within tens of microseconds.
pub struct Schedule {
    start: Instant,
    /// Wall clock at `start`, to stamp records with their due time.
    start_wall_ns: u64,
    /// Due times from the pacer thread, with a rate; the channel ends with the schedule.
    paced: Option<mpsc::UnboundedReceiver<Instant>>,
    deadline: Instant,
}

impl Schedule {
    /// A schedule from `start` until `deadline`; `records_per_sec` for this producer, its
    /// batches offset by `phase` (0 to 1) of the interval between them.
    pub fn new(
        start: Instant,
        start_wall_ns: u64,
        deadline: Instant,
        records_per_sec: Option<f64>,
        batch: usize,
        phase: f64,
    ) -> Schedule {
        let paced = records_per_sec.filter(|r| *r > 0.0).map(|rate| {
            let interval = Duration::from_secs_f64(batch as f64 / rate);
            let (tx, rx) = mpsc::unbounded_channel();
            let pacer = move || {
                for k in 0u64.. {
                    let due = start + interval.mul_f64(k as f64 + phase);
                    if due >= deadline {
                        break;
                    }
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    // The producer stopped early (its connection failed): so does the pacer.
                    if tx.send(due).is_err() {
                        break;
                    }
                }
            };
            if let Err(e) = std::thread::Builder::new()
                .name("bench-pacer".into())
                .spawn(pacer)
            {
                // Without a pacer the channel is closed at once and the producer sends nothing.
                eprintln!("shardline bench: cannot start a pacer thread: {e}");
            }
            rx
        });
        Schedule {
            start,
            start_wall_ns,
            paced,
            deadline,
        }
    }

    /// Waits until the next batch is due and returns its due time (monotonic and wall
    /// clock), or `None` once the run is over.
    pub async fn next(&mut self) -> Option<(Instant, u64)> {
        let due = match &mut self.paced {
            Some(paced) => paced.recv().await?,
            None => {
                let now = Instant::now();
                if now >= self.deadline {
                    return None;
                }
                now
            }
        };
        let wall = self.start_wall_ns + (due - self.start).as_nanos() as u64;
        Some((due, wall))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_paced_schedule_is_open_loop_and_offset_by_its_phase() {
        let start = Instant::now();
        // 1000-record batches at 100,000 records/s: one every 10 ms, this producer half an
        // interval in, until 50 ms.
        let mut schedule = Schedule::new(
            start,
            7_000,
            start + Duration::from_millis(50),
            Some(100_000.0),
            1000,
            0.5,
        );
        let mut dues = Vec::new();
        while let Some((due, wall)) = schedule.next().await {
            assert!(Instant::now() >= due, "a batch is never handed out early");
            assert_eq!(wall, 7_000 + (due - start).as_nanos() as u64);
            dues.push((due - start).as_micros());
        }
        assert_eq!(dues, [5_000, 15_000, 25_000, 35_000, 45_000]);
    }

    #[tokio::test]
    async fn an_unpaced_schedule_ends_at_its_deadline() {
        let start = Instant::now();
        let mut schedule = Schedule::new(start, 0, start, None, 10, 0.0);
        assert!(schedule.next().await.is_none());
    }

    #[test]
    fn record_size_syntax() {
        assert_eq!(RecordSize::parse("100"), Ok(RecordSize::Fixed(100)));
        assert_eq!(RecordSize::parse("fixed:7"), Ok(RecordSize::Fixed(7)));
        assert_eq!(
            RecordSize::parse("uniform:50-500"),
            Ok(RecordSize::Uniform { min: 50, max: 500 })
        );
        assert!(RecordSize::parse("uniform:500-50").is_err());
        assert!(RecordSize::parse("0").is_err());
        assert!(RecordSize::parse("normal:5").is_err());
        assert!(RecordSize::parse("2000000").is_err());
    }

    #[test]
    fn records_carry_their_stamp_and_size() {
        let mut maker = RecordMaker::new(3, RecordSize::Uniform { min: 5, max: 40 }, 10);
        let mut out = Vec::new();
        for i in 0..200u64 {
            maker.data(i, &mut out);
            assert!((5..=40).contains(&out.len()));
            let expected = (out.len() >= STAMP_BYTES).then_some(i);
            assert_eq!(stamp_of(&out), expected);
        }
        let keys: std::collections::HashSet<String> =
            (0..30).map(|_| maker.key().to_string()).collect();
        assert_eq!(keys.len(), 10);
    }

    #[test]
    fn base64_records_are_the_same_records() {
        for size in [
            RecordSize::Uniform { min: 1, max: 64 },
            RecordSize::Fixed(100),
        ] {
            let (mut a, mut b) = (RecordMaker::new(1, size, 5), RecordMaker::new(1, size, 5));
            let stamp = stamp_base64(42);
            let (mut raw, mut b64) = (Vec::new(), Vec::new());
            for _ in 0..300 {
                a.data(42, &mut raw);
                b64.clear();
                let n = b.data_base64(&stamp, &mut b64);
                assert_eq!(n, raw.len());
                assert_eq!(BASE64.decode(&b64).unwrap(), raw);
                let key: String = serde_json::from_slice(b.key_json()).unwrap();
                assert_eq!(key, a.key());
            }
        }
    }
}
