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

use serde::{de::DeserializeOwned, Serialize};
use superflow_core::Data;
use timely::container::Accountable;
use timely::dataflow::channels::ContainerBytes;

type CloneFn = fn(&(dyn Any + Send)) -> Box<dyn Any + Send>;
type EncodeFn = fn(&(dyn Any + Send)) -> Vec<u8>;
/// Decodes an encoded batch into a `Vec<T>` boxed as `Any`.
pub type DecodeFn = fn(&[u8]) -> Result<Box<dyn Any + Send>, postcard::Error>;

/// A batch of records of one type, erased.
#[derive(Default)]
pub struct Batch {
    inner: Inner,
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
    Local {
        data: Box<dyn Any + Send>,
        len: usize,
        clone: CloneFn,
        encode: Option<EncodeFn>,
        encoded: OnceCell<Vec<u8>>,
    },
    Encoded {
        bytes: Vec<u8>,
        len: usize,
    },
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

/// The decode function for records of type `T`.
pub fn decoder_for<T: Data + DeserializeOwned>() -> DecodeFn {
    decode_vec::<T>
}

impl Batch {
    /// Wraps records that stay in this process.
    pub fn local<T: Data>(records: Vec<T>) -> Batch {
        if records.is_empty() {
            return Batch::default();
        }
        let len = records.len();
        Batch {
            inner: Inner::Local {
                data: Box::new(records),
                len,
                clone: clone_vec::<T>,
                encode: None,
                encoded: OnceCell::new(),
            },
            target: None,
            tag: 0,
        }
    }

    /// Wraps records that may be sent to another process.
    pub fn exchangeable<T: Data + Serialize>(records: Vec<T>) -> Batch {
        let mut batch = Batch::local(records);
        if let Inner::Local { encode, .. } = &mut batch.inner {
            *encode = Some(encode_vec::<T>);
        }
        batch
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

    /// The number of records.
    pub fn len(&self) -> usize {
        match &self.inner {
            Inner::Empty => 0,
            Inner::Local { len, .. } | Inner::Encoded { len, .. } => *len,
        }
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes the records out as a `Vec<T>`, leaving the batch empty. `decode` is needed
    /// only for batches that arrived from another process.
    ///
    /// Panics if the batch holds another type: that is a bug in the graph builder, which
    /// pairs every edge's producer and consumer by type.
    pub fn take_vec<T: Data>(&mut self, decode: Option<DecodeFn>) -> Vec<T> {
        match std::mem::take(&mut self.inner) {
            Inner::Empty => Vec::new(),
            Inner::Local { data, .. } => match data.downcast::<Vec<T>>() {
                Ok(v) => *v,
                Err(_) => panic!(
                    "internal error: a batch does not hold records of type {}",
                    std::any::type_name::<T>()
                ),
            },
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
                    Err(e) => panic!(
                        "records of type {} from another process could not be decoded: {e}",
                        std::any::type_name::<T>()
                    ),
                }
            }
        }
    }

    fn encoded_bytes(&self) -> &[u8] {
        match &self.inner {
            Inner::Empty => &[],
            Inner::Encoded { bytes, .. } => bytes,
            Inner::Local {
                data,
                encode,
                encoded,
                ..
            } => encoded.get_or_init(|| match encode {
                Some(encode) => encode(data.as_ref()),
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
                data: clone(data.as_ref()),
                len: *len,
                clone: *clone,
                encode: *encode,
                encoded: OnceCell::new(),
            },
            Inner::Encoded { bytes, len } => Inner::Encoded {
                bytes: bytes.clone(),
                len: *len,
            },
        };
        Batch {
            inner,
            target: self.target,
            tag: self.tag,
        }
    }
}

impl Accountable for Batch {
    fn record_count(&self) -> i64 {
        self.len() as i64
    }
}

impl ContainerBytes for Batch {
    fn from_bytes(bytes: timely::bytes::arc::Bytes) -> Self {
        let raw: &[u8] = &bytes[..];
        let mut len_bytes = [0u8; 8];
        len_bytes.copy_from_slice(&raw[..8]);
        let len = u64::from_le_bytes(len_bytes) as usize;
        let mut size_bytes = [0u8; 8];
        size_bytes.copy_from_slice(&raw[8..16]);
        let size = u64::from_le_bytes(size_bytes) as usize;
        if len == 0 {
            return Batch::default();
        }
        Batch {
            inner: Inner::Encoded {
                bytes: raw[16..16 + size].to_vec(),
                len,
            },
            target: None,
            tag: 0,
        }
    }

    fn length_in_bytes(&self) -> usize {
        16 + ((self.encoded_bytes().len() + 7) & !7)
    }

    fn into_bytes<W: Write>(&self, writer: &mut W) {
        debug_assert_eq!(
            self.tag, 0,
            "side-output batches are re-tagged before an exchange"
        );
        let payload = self.encoded_bytes();
        let padded = (payload.len() + 7) & !7;
        // Writes go to timely's in-memory send buffers.
        let _ = writer.write_all(&(self.len() as u64).to_le_bytes());
        let _ = writer.write_all(&(payload.len() as u64).to_le_bytes());
        let _ = writer.write_all(payload);
        let _ = writer.write_all(&[0u8; 8][..padded - payload.len()]);
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
}
