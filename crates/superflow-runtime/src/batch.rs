//! `Batch`: the one container type that flows on every timely edge of a Superflow job.
//!
//! Physical streams carry type-erased batches so that the job graph can be turned into
//! a dataflow without knowing every record type statically (a node's output stream is
//! memoized by node id, whatever its type). The cost is one downcast per batch, never
//! per record. A batch that crosses a process boundary is encoded with postcard by the
//! codec of the edge that routed it, and decoded by the receiving operator.

use std::any::Any;
use std::cell::OnceCell;
use std::io::Write;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{de::DeserializeOwned, Serialize};
use superflow_core::Data;

use crate::time::WatermarkMessage;
use timely::container::Accountable;
use timely::dataflow::channels::ContainerBytes;

type CloneFn = fn(&(dyn Any + Send)) -> Box<dyn Any + Send>;
type SharedRecords = Arc<Mutex<Option<Box<dyn Any + Send>>>>;
type EncodeFn = fn(&(dyn Any + Send)) -> Vec<u8>;
/// Decodes an encoded batch into a `Vec<T>` boxed as `Any`.
pub type DecodeFn = fn(&[u8]) -> Result<Box<dyn Any + Send>, postcard::Error>;

/// A batch of records of one type, erased, or a watermark.
#[derive(Default)]
pub struct Batch {
    inner: Inner,
    /// The records' event timestamps, parallel to the records, when the stream has them.
    timestamps: Option<Vec<i64>>,
    /// The worker this batch is addressed to, set by a broadcast fan-out.
    target: Option<usize>,
    /// Which output of its operator the batch belongs to: 0 is the main output, other
    /// values are side outputs (see `side_output_tag`).
    tag: u32,
}

#[derive(Default)]
enum Inner {
    #[default]
    Empty,
    /// Records of this process. Clones share them (a tee to several consumers costs
    /// nothing); a consumer that takes records shared with another copies them, and
    /// the last one takes them as they are.
    Local {
        data: SharedRecords,
        len: usize,
        clone: CloneFn,
        encode: Option<EncodeFn>,
        encoded: OnceCell<Vec<u8>>,
    },
    Encoded {
        bytes: Vec<u8>,
        len: usize,
    },
    /// A watermark (or idleness) message of one upstream channel. It counts as `copies`
    /// records for progress tracking: an exchange splits it into one copy per worker.
    Watermark {
        message: WatermarkMessage,
        copies: usize,
    },
}

/// Records of one type and, when the stream carries event time, their timestamps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Records<T> {
    /// The records.
    pub values: Vec<T>,
    /// One event timestamp per record, or `None` when the stream has no timestamps.
    pub timestamps: Option<Vec<i64>>,
}

impl<T> Default for Records<T> {
    fn default() -> Self {
        Records {
            values: Vec::new(),
            timestamps: None,
        }
    }
}

impl<T> Records<T> {
    /// Records without timestamps.
    pub fn untimed(values: Vec<T>) -> Records<T> {
        Records {
            values,
            timestamps: None,
        }
    }

    /// The number of records.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there is no record.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.values.clear();
        if let Some(ts) = &mut self.timestamps {
            ts.clear();
        }
    }

    /// Appends one record with its timestamp (`None`: the stream has no timestamps).
    #[inline]
    pub fn push(&mut self, value: T, timestamp: Option<i64>) {
        self.values.push(value);
        self.stamp_new(timestamp);
    }

    /// Stamps the records appended since the last stamp with `timestamp` (they were
    /// produced from one input record, or fired by one timer).
    #[inline]
    pub fn stamp_new(&mut self, timestamp: Option<i64>) {
        if let Some(t) = timestamp {
            let ts = self.timestamps.get_or_insert_with(Vec::new);
            ts.resize(self.values.len(), t);
        }
    }

    /// Keeps the records for which `keep` is true, with their timestamps.
    #[inline]
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) {
        match &mut self.timestamps {
            None => self.values.retain(keep),
            Some(ts) => {
                let mut index = 0;
                let mut kept = 0;
                self.values.retain(|v| {
                    let k = keep(v);
                    if k {
                        ts[kept] = ts[index];
                        kept += 1;
                    }
                    index += 1;
                    k
                });
                ts.truncate(kept);
            }
        }
    }

    /// Iterates over records and their timestamps, emptying the batch.
    pub fn drain(&mut self) -> impl Iterator<Item = (T, Option<i64>)> + '_ {
        let ts = self.timestamps.as_mut();
        let mut ts_iter = ts.map(|t| t.drain(..));
        self.values
            .drain(..)
            .map(move |v| (v, ts_iter.as_mut().and_then(|t| t.next())))
    }
}

fn clone_vec<T: Data>(data: &(dyn Any + Send)) -> Box<dyn Any + Send> {
    match data.downcast_ref::<Vec<T>>() {
        Some(v) => Box::new(v.clone()),
        None => Box::new(Vec::<T>::new()),
    }
}

fn encode_vec<T: Data + Serialize>(data: &(dyn Any + Send)) -> Vec<u8> {
    match data.downcast_ref::<Vec<T>>() {
        // Serializing plain data into a Vec only fails for types whose Serialize impl
        // itself fails; that is a bug in the record type, reported loudly.
        Some(v) => postcard::to_stdvec(v).unwrap_or_else(|e| {
            panic!(
                "records of type {} could not be serialized for exchange: {e}",
                std::any::type_name::<T>()
            )
        }),
        None => Vec::new(),
    }
}

fn decode_vec<T: Data + DeserializeOwned>(
    bytes: &[u8],
) -> Result<Box<dyn Any + Send>, postcard::Error> {
    let v: Vec<T> = postcard::from_bytes(bytes)?;
    Ok(Box::new(v))
}

/// Records from another process that do not decode as the type this process expects.
#[derive(Debug, thiserror::Error)]
#[error("records of type {record} from another process could not be decoded ({cause}): do all processes run the same build of the job?")]
pub struct BatchDecodeError {
    /// The record type expected.
    pub record: &'static str,
    /// Why they do not decode.
    pub cause: postcard::Error,
}

/// The decode function for records of type `T`.
pub fn decoder_for<T: Data + DeserializeOwned>() -> DecodeFn {
    decode_vec::<T>
}

impl Batch {
    /// Wraps records that stay in this process.
    pub fn local<T: Data>(records: Vec<T>) -> Batch {
        Batch::from_records(Records::untimed(records), None)
    }

    /// Wraps records that may be sent to another process.
    pub fn exchangeable<T: Data + Serialize>(records: Vec<T>) -> Batch {
        Batch::from_records(Records::untimed(records), Some(encode_vec::<T>))
    }

    /// Wraps records (with their timestamps) that stay in this process.
    pub fn local_records<T: Data>(records: Records<T>) -> Batch {
        Batch::from_records(records, None)
    }

    /// Wraps records (with their timestamps) that may be sent to another process.
    pub fn exchangeable_records<T: Data + Serialize>(records: Records<T>) -> Batch {
        Batch::from_records(records, Some(encode_vec::<T>))
    }

    fn from_records<T: Data>(records: Records<T>, encode: Option<EncodeFn>) -> Batch {
        if records.is_empty() {
            return Batch::default();
        }
        let len = records.values.len();
        Batch {
            inner: Inner::Local {
                data: Arc::new(Mutex::new(Some(Box::new(records.values)))),
                len,
                clone: clone_vec::<T>,
                encode,
                encoded: OnceCell::new(),
            },
            timestamps: records.timestamps,
            target: None,
            tag: 0,
        }
    }

    /// A watermark message, counted as `copies` records (the number of workers, so that an
    /// exchange can hand one copy to each).
    pub fn watermark(message: WatermarkMessage, copies: usize) -> Batch {
        Batch {
            inner: Inner::Watermark { message, copies },
            timestamps: None,
            target: None,
            tag: 0,
        }
    }

    /// The watermark message this batch carries, if it is one.
    pub fn as_watermark(&self) -> Option<&WatermarkMessage> {
        match &self.inner {
            Inner::Watermark { message, .. } => Some(message),
            _ => None,
        }
    }

    /// One receiver's copy of a watermark batch (counted as one record).
    pub fn watermark_copy(&self) -> Batch {
        match &self.inner {
            Inner::Watermark { message, .. } => Batch::watermark(*message, 1),
            _ => Batch::default(),
        }
    }

    /// Sets the channel a watermark batch comes from (the operator that sends it).
    pub fn stamp_watermark_origin(&mut self, origin: u32, subtask: u32, copies: usize) {
        if let Inner::Watermark {
            message,
            copies: count,
        } = &mut self.inner
        {
            message.origin = origin;
            message.subtask = subtask;
            *count = copies;
        }
    }

    /// Addresses the batch to one worker (see `TaggedBatchRouter`).
    pub fn with_target(mut self, worker: usize) -> Batch {
        self.target = Some(worker);
        self
    }

    /// The worker the batch is addressed to, if any.
    pub fn target(&self) -> Option<usize> {
        self.target
    }

    /// Marks the batch as belonging to side output `tag` (0 is the main output).
    pub fn with_tag(mut self, tag: u32) -> Batch {
        self.tag = tag;
        self
    }

    /// The output the batch belongs to: 0 for the main output.
    pub fn tag(&self) -> u32 {
        self.tag
    }

    /// The number of records (0 for a watermark).
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Empty | Inner::Watermark { .. } => 0,
            Inner::Local { len, .. } | Inner::Encoded { len, .. } => *len,
        }
    }

    /// Whether the batch holds no record and is not a watermark.
    pub fn is_empty(&self) -> bool {
        matches!(self.inner, Inner::Empty)
    }

    /// Takes the records out as a `Vec<T>`, dropping any timestamps. See
    /// [`Batch::take_records`].
    pub fn take_vec<T: Data>(&mut self, decode: Option<DecodeFn>) -> Vec<T> {
        self.take_records(decode).values
    }

    /// Takes the records and their timestamps out, leaving the batch empty. `decode` is
    /// needed only for batches that arrived from another process.
    ///
    /// Panics if the batch holds another type: that is a bug in the graph builder, which
    /// pairs every edge's producer and consumer by type.
    pub fn take_records<T: Data>(&mut self, decode: Option<DecodeFn>) -> Records<T> {
        self.try_take_records(decode)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// [`Batch::take_records`], with an error for records from another process that do
    /// not decode as `T` (a process running another build of the job).
    pub fn try_take_records<T: Data>(
        &mut self,
        decode: Option<DecodeFn>,
    ) -> Result<Records<T>, BatchDecodeError> {
        let timestamps = self.timestamps.take();
        let values = match std::mem::take(&mut self.inner) {
            Inner::Empty | Inner::Watermark { .. } => Vec::new(),
            Inner::Local { data, clone, .. } => {
                let boxed = match Arc::try_unwrap(data) {
                    Ok(unique) => unique.into_inner().unwrap_or_else(PoisonError::into_inner),
                    Err(shared) => {
                        let guard = shared.lock().unwrap_or_else(PoisonError::into_inner);
                        guard.as_deref().map(clone)
                    }
                };
                match boxed.map(|b| b.downcast::<Vec<T>>()) {
                    Some(Ok(v)) => *v,
                    Some(Err(_)) => panic!(
                        "internal error: a batch does not hold records of type {}",
                        std::any::type_name::<T>()
                    ),
                    None => Vec::new(),
                }
            }
            Inner::Encoded { bytes, .. } => {
                let decode = decode.unwrap_or_else(|| {
                    panic!(
                        "internal error: records of type {} arrived from another process, but the edge has no decoder",
                        std::any::type_name::<T>()
                    )
                });
                match decode(&bytes) {
                    Ok(data) => match data.downcast::<Vec<T>>() {
                        Ok(v) => *v,
                        Err(_) => panic!("internal error: decoder returned another type"),
                    },
                    Err(cause) => {
                        return Err(BatchDecodeError {
                            record: std::any::type_name::<T>(),
                            cause,
                        })
                    }
                }
            }
        };
        Ok(Records { values, timestamps })
    }

    fn encoded_bytes(&self) -> &[u8] {
        match &self.inner {
            Inner::Empty | Inner::Watermark { .. } => &[],
            Inner::Encoded { bytes, .. } => bytes,
            Inner::Local {
                data,
                encode,
                encoded,
                ..
            } => encoded.get_or_init(|| match encode {
                Some(encode) => {
                    let guard = data.lock().unwrap_or_else(PoisonError::into_inner);
                    guard.as_deref().map(encode).unwrap_or_default()
                }
                None => panic!(
                    "internal error: a batch without a codec was routed to another process; \
                     the job validation should have rejected this edge"
                ),
            }),
        }
    }
}

impl Clone for Batch {
    fn clone(&self) -> Self {
        let inner = match &self.inner {
            Inner::Empty => Inner::Empty,
            Inner::Local {
                data,
                len,
                clone,
                encode,
                ..
            } => Inner::Local {
                data: Arc::clone(data),
                len: *len,
                clone: *clone,
                encode: *encode,
                encoded: OnceCell::new(),
            },
            Inner::Encoded { bytes, len } => Inner::Encoded {
                bytes: bytes.clone(),
                len: *len,
            },
            Inner::Watermark { message, copies } => Inner::Watermark {
                message: *message,
                copies: *copies,
            },
        };
        Batch {
            inner,
            timestamps: self.timestamps.clone(),
            target: self.target,
            tag: self.tag,
        }
    }
}

impl Accountable for Batch {
    fn record_count(&self) -> i64 {
        match &self.inner {
            Inner::Watermark { copies, .. } => *copies as i64,
            _ => self.len() as i64,
        }
    }
}

const KIND_RECORDS: u64 = 0;
const KIND_WATERMARK: u64 = 1;
const HEADER: usize = 32;

fn read_u64(raw: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&raw[at..at + 8]);
    u64::from_le_bytes(word)
}

fn padded(n: usize) -> usize {
    (n + 7) & !7
}

/// The wire format: a header of four little-endian words, then the payload.
/// Records: `[0, len, payload size, timestamp count]`, the postcard payload padded to 8
/// bytes, then the timestamps. A watermark: `[1, origin | subtask << 32, value, idle]`.
impl ContainerBytes for Batch {
    fn from_bytes(bytes: timely::bytes::arc::Bytes) -> Self {
        let raw: &[u8] = &bytes[..];
        if read_u64(raw, 0) == KIND_WATERMARK {
            let channel = read_u64(raw, 8);
            let message = WatermarkMessage {
                origin: channel as u32,
                subtask: (channel >> 32) as u32,
                value: read_u64(raw, 16) as i64,
                idle: read_u64(raw, 24) != 0,
            };
            return Batch::watermark(message, 1);
        }
        let len = read_u64(raw, 8) as usize;
        let size = read_u64(raw, 16) as usize;
        let ts_count = read_u64(raw, 24) as usize;
        if len == 0 {
            return Batch::default();
        }
        let ts_start = HEADER + padded(size);
        let timestamps = (ts_count > 0).then(|| {
            (0..ts_count)
                .map(|i| read_u64(raw, ts_start + 8 * i) as i64)
                .collect()
        });
        Batch {
            inner: Inner::Encoded {
                bytes: raw[HEADER..HEADER + size].to_vec(),
                len,
            },
            timestamps,
            target: None,
            tag: 0,
        }
    }

    fn length_in_bytes(&self) -> usize {
        if self.as_watermark().is_some() {
            return HEADER;
        }
        let ts = self.timestamps.as_ref().map_or(0, Vec::len);
        HEADER + padded(self.encoded_bytes().len()) + 8 * ts
    }

    fn into_bytes<W: Write>(&self, writer: &mut W) {
        debug_assert_eq!(
            self.tag, 0,
            "side-output batches are re-tagged before an exchange"
        );
        // Writes go to timely's in-memory send buffers.
        if let Some(message) = self.as_watermark() {
            let channel = u64::from(message.origin) | (u64::from(message.subtask) << 32);
            for word in [
                KIND_WATERMARK,
                channel,
                message.value as u64,
                u64::from(message.idle),
            ] {
                let _ = writer.write_all(&word.to_le_bytes());
            }
            return;
        }
        let payload = self.encoded_bytes();
        let ts: &[i64] = self.timestamps.as_deref().unwrap_or(&[]);
        for word in [
            KIND_RECORDS,
            self.len() as u64,
            payload.len() as u64,
            ts.len() as u64,
        ] {
            let _ = writer.write_all(&word.to_le_bytes());
        }
        let _ = writer.write_all(payload);
        let _ = writer.write_all(&[0u8; 8][..padded(payload.len()) - payload.len()]);
        for t in ts {
            let _ = writer.write_all(&t.to_le_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_batches_round_trip() {
        let mut b = Batch::local(vec![1u32, 2, 3]);
        assert_eq!(b.len(), 3);
        let c = b.clone();
        assert_eq!(b.take_vec::<u32>(None), vec![1, 2, 3]);
        assert!(b.is_empty());
        let mut c = c;
        assert_eq!(c.take_vec::<u32>(None), vec![1, 2, 3]);
    }

    #[test]
    fn exchangeable_batches_survive_bytes() {
        let b = Batch::exchangeable(vec![("a".to_string(), 1i64), ("b".to_string(), 2)]);
        let mut buf = Vec::new();
        b.into_bytes(&mut buf);
        assert_eq!(buf.len(), b.length_in_bytes());
        let mut back = Batch::from_bytes(timely::bytes::arc::BytesMut::from(buf).freeze());
        assert_eq!(back.len(), 2);
        let v: Vec<(String, i64)> = back.take_vec(Some(decoder_for::<(String, i64)>()));
        assert_eq!(v, vec![("a".to_string(), 1), ("b".to_string(), 2)]);
    }

    #[test]
    fn records_of_another_type_from_another_process_are_an_error() {
        let b = Batch::exchangeable(vec![1u8, 2, 3]);
        let mut buf = Vec::new();
        b.into_bytes(&mut buf);
        let mut back = Batch::from_bytes(timely::bytes::arc::BytesMut::from(buf).freeze());
        let err = back
            .try_take_records::<(u64, String)>(Some(decoder_for::<(u64, String)>()))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("(u64, alloc::string::String)"), "{err}");
        assert!(err.contains("same build"), "{err}");
    }

    #[test]
    fn timestamps_and_watermarks_survive_bytes() {
        let records = Records {
            values: vec![7u32, 8, 9],
            timestamps: Some(vec![-5, 0, i64::MAX]),
        };
        let b = Batch::exchangeable_records(records.clone());
        let mut buf = Vec::new();
        b.into_bytes(&mut buf);
        assert_eq!(buf.len(), b.length_in_bytes());
        let mut back = Batch::from_bytes(timely::bytes::arc::BytesMut::from(buf).freeze());
        assert_eq!(
            back.take_records::<u32>(Some(decoder_for::<u32>())),
            records
        );

        let message = WatermarkMessage {
            origin: 3,
            subtask: 1,
            value: i64::MIN + 1,
            idle: true,
        };
        let w = Batch::watermark(message, 4);
        assert_eq!(w.record_count(), 4);
        let mut buf = Vec::new();
        w.into_bytes(&mut buf);
        assert_eq!(buf.len(), w.length_in_bytes());
        let back = Batch::from_bytes(timely::bytes::arc::BytesMut::from(buf).freeze());
        assert_eq!(back.as_watermark(), Some(&message));
        assert_eq!(back.record_count(), 1);
    }

    #[test]
    fn retain_and_drain_keep_timestamps_aligned() {
        let mut r = Records {
            values: vec![1, 2, 3, 4, 5],
            timestamps: Some(vec![10, 20, 30, 40, 50]),
        };
        r.retain(|v| v % 2 == 1);
        assert_eq!(r.values, vec![1, 3, 5]);
        assert_eq!(r.timestamps, Some(vec![10, 30, 50]));
        let drained: Vec<_> = r.drain().collect();
        assert_eq!(drained, vec![(1, Some(10)), (3, Some(30)), (5, Some(50))]);
        assert!(r.is_empty());
    }
}
