//! `from_elements` / `from_collection`: a non-parallel source over an in-memory vector,
//! emitted in order, as in Flink.

use std::sync::Arc;

use superflow_core::Data;
use superflow_runtime::{RestoredSplits, SourceError, SourceFunction, SourcePoll, SourceReader};

/// Emits the elements of a vector, in order, from one subtask.
pub struct CollectionSource<T> {
    items: Arc<Vec<T>>,
}

impl<T> CollectionSource<T> {
    /// A source over `items`.
    pub fn new(items: Vec<T>) -> Self {
        CollectionSource {
            items: Arc::new(items),
        }
    }
}

impl<T: Data + Sync> SourceFunction<T> for CollectionSource<T> {
    fn is_replayable(&self) -> bool {
        true
    }

    fn is_bounded(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "Collection Source".into()
    }

    fn max_parallelism(&self) -> Option<usize> {
        Some(1)
    }

    fn create_reader(
        &self,
        _subtask: usize,
        _parallelism: usize,
    ) -> Result<Box<dyn SourceReader<T>>, SourceError> {
        Ok(Box::new(CollectionReader {
            items: Arc::clone(&self.items),
            next: 0,
        }))
    }

    fn restore_reader(
        &self,
        restored: RestoredSplits,
        _subtask: usize,
        _parallelism: usize,
    ) -> Result<Box<dyn SourceReader<T>>, SourceError> {
        let splits = restored.splits;
        // One split at most: the index of the next element. No split: all were read.
        let next = match splits.first() {
            Some(bytes) => crate::decode_split::<u64>(bytes)? as usize,
            None => self.items.len(),
        };
        Ok(Box::new(CollectionReader {
            items: Arc::clone(&self.items),
            next: next.min(self.items.len()),
        }))
    }
}

struct CollectionReader<T> {
    items: Arc<Vec<T>>,
    next: usize,
}

impl<T: Data> SourceReader<T> for CollectionReader<T> {
    fn poll(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourcePoll, SourceError> {
        let end = (self.next + max).min(self.items.len());
        out.extend_from_slice(&self.items[self.next..end]);
        self.next = end;
        Ok(if end == self.items.len() {
            SourcePoll::Finished
        } else {
            SourcePoll::Ready
        })
    }

    fn snapshot_splits(&self) -> Option<Vec<Vec<u8>>> {
        crate::encode_splits(&[self.next as u64])
    }
}
