//! Generated sources: `from_sequence(from, to)` and a data generator from an index to a
//! record, with an optional rate limit.

use std::time::{Duration, Instant};

use superflow_core::Data;
use superflow_runtime::{RestoredSplits, SourceError, SourceFunction, SourcePoll, SourceReader};

/// The numbers `from..=to`, split into contiguous ranges across subtasks.
#[derive(Debug, Clone)]
pub struct SequenceSource {
    from: i64,
    to: i64,
}

impl SequenceSource {
    /// The inclusive range `from..=to` (empty when `from > to`).
    pub fn new(from: i64, to: i64) -> Self {
        SequenceSource { from, to }
    }

    /// The half-open index range `[start, end)` of subtask `i` of `p`, as offsets from `from`.
    fn split(&self, i: usize, p: usize) -> (u128, u128) {
        let total = if self.to < self.from {
            0
        } else {
            (self.to as i128 - self.from as i128 + 1) as u128
        };
        (
            total * i as u128 / p as u128,
            total * (i as u128 + 1) / p as u128,
        )
    }
}

impl SourceFunction<i64> for SequenceSource {
    fn is_replayable(&self) -> bool {
        true
    }

    fn is_bounded(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "Sequence Source".into()
    }

    fn create_reader(
        &self,
        subtask: usize,
        parallelism: usize,
    ) -> Result<Box<dyn SourceReader<i64>>, SourceError> {
        let (start, end) = self.split(subtask, parallelism);
        let next = (self.from as i128 + start as i128) as i64;
        Ok(Box::new(SequenceReader {
            ranges: vec![(next, (end - start) as u64)],
        }))
    }

    fn restore_reader(
        &self,
        restored: RestoredSplits,
        _subtask: usize,
        _parallelism: usize,
    ) -> Result<Box<dyn SourceReader<i64>>, SourceError> {
        let splits = restored.splits;
        let mut ranges = splits
            .iter()
            .map(|bytes| crate::decode_split::<(i64, u64)>(bytes))
            .collect::<Result<Vec<_>, _>>()?;
        ranges.reverse();
        Ok(Box::new(SequenceReader { ranges }))
    }
}

/// Reads ranges `(next, remaining)`, the last one first.
struct SequenceReader {
    ranges: Vec<(i64, u64)>,
}

impl SourceReader<i64> for SequenceReader {
    fn poll(&mut self, out: &mut Vec<i64>, max: usize) -> Result<SourcePoll, SourceError> {
        while self.ranges.last().is_some_and(|r| r.1 == 0) {
            self.ranges.pop();
        }
        let Some((next, remaining)) = self.ranges.last_mut() else {
            return Ok(SourcePoll::Finished);
        };
        let n = (max as u64).min(*remaining);
        let start = *next;
        out.extend((0..n as i64).map(|k| start.wrapping_add(k)));
        *next = start.wrapping_add(n as i64);
        *remaining -= n;
        Ok(if self.ranges.iter().all(|r| r.1 == 0) {
            SourcePoll::Finished
        } else {
            SourcePoll::Ready
        })
    }

    fn snapshot_splits(&self) -> Option<Vec<Vec<u8>>> {
        let live: Vec<(i64, u64)> = self.ranges.iter().rev().copied().collect();
        crate::encode_splits(&live)
    }
}

/// Records made by a function of their index: index `i` goes to subtask `i % p`.
/// Bounded by `count`, or unbounded; optionally limited to `rate` records per second
/// over all subtasks.
pub struct DataGeneratorSource<T, F> {
    generate: F,
    count: Option<u64>,
    rate: Option<f64>,
    _record: std::marker::PhantomData<fn() -> T>,
}

impl<T, F: Fn(u64) -> T> DataGeneratorSource<T, F> {
    /// A generator of `count` records (`None`: unbounded), at most `rate` per second.
    pub fn new(generate: F, count: Option<u64>, rate: Option<f64>) -> Self {
        DataGeneratorSource {
            generate,
            count,
            rate,
            _record: std::marker::PhantomData,
        }
    }
}

impl<T: Data, F: Fn(u64) -> T + Clone + Send + Sync + 'static> SourceFunction<T>
    for DataGeneratorSource<T, F>
{
    fn is_replayable(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "DataGenerator Source".into()
    }

    fn is_bounded(&self) -> bool {
        self.count.is_some()
    }

    fn prepare(&self) -> Result<(), SourceError> {
        match self.rate {
            Some(r) if !(r.is_finite() && r > 0.0) => Err(SourceError::new(format!(
                "the rate limit must be a positive number of records per second, got {r}"
            ))),
            _ => Ok(()),
        }
    }

    fn create_reader(
        &self,
        subtask: usize,
        parallelism: usize,
    ) -> Result<Box<dyn SourceReader<T>>, SourceError> {
        Ok(Box::new(GeneratorReader {
            generate: self.generate.clone(),
            splits: vec![(subtask as u64, parallelism as u64)],
            turn: 0,
            count: self.count,
            rate: self.rate.map(|r| r / parallelism as f64),
            started: Instant::now(),
            emitted: 0,
        }))
    }

    fn restore_reader(
        &self,
        restored: RestoredSplits,
        _subtask: usize,
        parallelism: usize,
    ) -> Result<Box<dyn SourceReader<T>>, SourceError> {
        let splits = restored.splits;
        let splits = splits
            .iter()
            .map(|bytes| crate::decode_split::<(u64, u64)>(bytes))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(GeneratorReader {
            generate: self.generate.clone(),
            splits,
            turn: 0,
            count: self.count,
            rate: self.rate.map(|r| r / parallelism as f64),
            started: Instant::now(),
            emitted: 0,
        }))
    }
}

/// Generates the indexes of its splits `(next, step)`, taking turns between them.
struct GeneratorReader<F> {
    generate: F,
    splits: Vec<(u64, u64)>,
    turn: usize,
    count: Option<u64>,
    rate: Option<f64>,
    started: Instant,
    emitted: u64,
}

impl<T, F: Fn(u64) -> T> SourceReader<T> for GeneratorReader<F> {
    fn poll(&mut self, out: &mut Vec<T>, max: usize) -> Result<SourcePoll, SourceError> {
        let mut budget = max as u64;
        if let Some(rate) = self.rate {
            let allowed = (self.started.elapsed().as_secs_f64() * rate) as u64 + 1;
            budget = budget.min(allowed.saturating_sub(self.emitted));
            if budget == 0 {
                let wait = Duration::from_secs_f64((1.0 / rate).min(0.05));
                return Ok(SourcePoll::Pending(wait));
            }
        }
        if let Some(count) = self.count {
            self.splits.retain(|&(next, _)| next < count);
        }
        for _ in 0..budget {
            if self.splits.is_empty() {
                return Ok(SourcePoll::Finished);
            }
            self.turn %= self.splits.len();
            let (next, step) = &mut self.splits[self.turn];
            out.push((self.generate)(*next));
            *next += *step;
            if self.count.is_some_and(|c| *next >= c) {
                self.splits.remove(self.turn);
            } else {
                self.turn += 1;
            }
            self.emitted += 1;
        }
        if self.splits.is_empty() {
            return Ok(SourcePoll::Finished);
        }
        Ok(SourcePoll::Ready)
    }

    fn snapshot_splits(&self) -> Option<Vec<Vec<u8>>> {
        crate::encode_splits(&self.splits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain<T>(mut reader: Box<dyn SourceReader<T>>) -> Vec<T> {
        let mut out = Vec::new();
        while reader
            .poll(&mut out, 7)
            .map(|p| p != SourcePoll::Finished)
            .unwrap_or(false)
        {}
        out
    }

    #[test]
    fn sequence_splits_without_overlap() {
        let source = SequenceSource::new(-5, 100);
        for p in [1, 2, 3, 4, 7] {
            let mut all: Vec<i64> = (0..p)
                .flat_map(|i| drain(source.create_reader(i, p).unwrap_or_else(|e| panic!("{e}"))))
                .collect();
            all.sort();
            assert_eq!(all, (-5..=100).collect::<Vec<_>>(), "parallelism {p}");
        }
        assert!(drain(
            SequenceSource::new(3, 2)
                .create_reader(0, 1)
                .unwrap_or_else(|e| panic!("{e}"))
        )
        .is_empty());
    }

    #[test]
    fn generator_splits_without_overlap() {
        let source = DataGeneratorSource::new(|i| i * 10, Some(50), None);
        let mut all: Vec<u64> = (0..3)
            .flat_map(|i| drain(source.create_reader(i, 3).unwrap_or_else(|e| panic!("{e}"))))
            .collect();
        all.sort();
        assert_eq!(all, (0..50).map(|i| i * 10).collect::<Vec<_>>());
    }
}
