//! The Nexmark event source: the `nexmark` crate's generator, split across subtasks
//! (subtask `i` of `p` makes events `i, i + p, i + 2p, ...`), bounded to a number of
//! events, with event timestamps and watermarks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexmark::config::NexmarkConfig;
use nexmark::event::{Auction, Bid, Event, Person};
use nexmark::EventGenerator;
use superflow::prelude::*;
use superflow::{RestoredSplits, SourceError, SourceFunction, SourcePoll, SourceReader};

/// How the events are made.
#[derive(Debug, Clone)]
pub struct NexmarkSettings {
    /// Events in all (persons, auctions and bids, 1:3:46 as in Nexmark).
    pub events: u64,
    /// Events per second of event time: how densely timestamps are spaced. Flink's
    /// Nexmark runs use 10 million.
    pub events_per_second: usize,
    /// The timestamp of the first event (ms since the epoch); fixed, so runs repeat.
    pub base_time: u64,
    /// How far watermarks trail the largest timestamp (Flink's Nexmark tables use 4 s).
    pub watermark_delay: Duration,
    /// How long the source stays open after its last event, so that processing-time
    /// windows can close while the job runs.
    pub linger: Duration,
}

impl Default for NexmarkSettings {
    fn default() -> Self {
        NexmarkSettings {
            events: 10_000_000,
            events_per_second: 10_000_000,
            base_time: 1_700_000_000_000,
            watermark_delay: Duration::from_secs(4),
            linger: Duration::ZERO,
        }
    }
}

impl NexmarkSettings {
    fn config(&self) -> NexmarkConfig {
        NexmarkConfig {
            base_time: self.base_time,
            first_rate: self.events_per_second,
            next_rate: self.events_per_second,
            ..NexmarkConfig::default()
        }
    }

    /// Every event, in order, made on this thread: for reference computations.
    pub fn all_events(&self) -> Vec<Event> {
        EventGenerator::new(self.config())
            .take(self.events as usize)
            .collect()
    }
}

/// A parallel source of Nexmark events.
pub struct NexmarkSource {
    settings: Arc<NexmarkSettings>,
}

impl NexmarkSource {
    /// A source making `settings.events` events.
    pub fn new(settings: NexmarkSettings) -> Self {
        NexmarkSource {
            settings: Arc::new(settings),
        }
    }
}

/// Generates the events of its splits (`next, next + step, ...` each), taking turns.
struct NexmarkReader {
    splits: Vec<NexmarkSplit>,
    turn: usize,
    total: u64,
    linger: Duration,
    done_at: Option<Instant>,
}

impl SourceFunction<Event> for NexmarkSource {
    fn is_replayable(&self) -> bool {
        true
    }

    fn name(&self) -> String {
        "Nexmark Source".into()
    }

    fn is_bounded(&self) -> bool {
        true
    }

    fn create_reader(
        &self,
        subtask: usize,
        parallelism: usize,
    ) -> Result<Box<dyn SourceReader<Event>>, SourceError> {
        Ok(Box::new(NexmarkReader {
            splits: vec![self.split(subtask as u64, parallelism as u64)],
            turn: 0,
            total: self.settings.events,
            linger: self.settings.linger,
            done_at: None,
        }))
    }

    fn restore_reader(
        &self,
        restored: RestoredSplits,
        _subtask: usize,
        _parallelism: usize,
    ) -> Result<Box<dyn SourceReader<Event>>, SourceError> {
        let splits = restored.splits;
        let splits = splits
            .iter()
            .map(|bytes| {
                postcard::from_bytes::<(u64, u64)>(bytes)
                    .map(|(next, step)| self.split(next, step))
                    .map_err(|e| SourceError::new(format!("bad Nexmark position: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Box::new(NexmarkReader {
            splits,
            turn: 0,
            total: self.settings.events,
            linger: self.settings.linger,
            done_at: None,
        }))
    }
}

/// Events `next, next + step, ...` of the generator.
struct NexmarkSplit {
    generator: EventGenerator,
    next: u64,
    step: u64,
}

impl NexmarkSource {
    fn split(&self, next: u64, step: u64) -> NexmarkSplit {
        NexmarkSplit {
            generator: EventGenerator::new(self.settings.config())
                .with_offset(next)
                .with_step(step),
            next,
            step,
        }
    }
}

impl SourceReader<Event> for NexmarkReader {
    fn poll(&mut self, out: &mut Vec<Event>, max: usize) -> Result<SourcePoll, SourceError> {
        let total = self.total;
        self.splits.retain(|s| s.next < total);
        let mut made = 0;
        while made < max && !self.splits.is_empty() {
            self.turn %= self.splits.len();
            let split = &mut self.splits[self.turn];
            match split.generator.next() {
                Some(event) => out.push(event),
                None => return Ok(SourcePoll::Finished),
            }
            split.next += split.step;
            if split.next >= total {
                self.splits.remove(self.turn);
            } else {
                self.turn += 1;
            }
            made += 1;
        }
        if !self.splits.is_empty() {
            return Ok(SourcePoll::Ready);
        }
        let done_at = *self.done_at.get_or_insert_with(Instant::now);
        if done_at.elapsed() >= self.linger {
            Ok(SourcePoll::Finished)
        } else {
            Ok(SourcePoll::Pending(Duration::from_millis(10)))
        }
    }

    fn snapshot_splits(&self) -> Option<Vec<Vec<u8>>> {
        self.splits
            .iter()
            .map(|s| postcard::to_stdvec(&(s.next, s.step)).ok())
            .collect()
    }
}

/// The timestamp of an event, in milliseconds.
pub fn event_time(event: &Event) -> i64 {
    event.timestamp() as i64
}

/// The Nexmark event stream with timestamps and watermarks.
pub fn event_stream(
    env: &StreamExecutionEnvironment,
    settings: &NexmarkSettings,
) -> DataStream<Event> {
    env.from_source_with_watermarks(
        NexmarkSource::new(settings.clone()),
        WatermarkStrategy::for_bounded_out_of_orderness(settings.watermark_delay)
            .with_timestamp_assigner(|e: &Event, _| event_time(e)),
        "Nexmark Source",
    )
}

/// An event stream split by kind in one operator, so that a query reading two kinds
/// does not copy the whole stream for each.
pub struct SplitEvents {
    /// The persons.
    pub persons: DataStream<Person>,
    /// The auctions.
    pub auctions: DataStream<Auction>,
    /// The bids.
    pub bids: DataStream<Bid>,
}

/// Splits an event stream into persons, auctions and bids.
pub fn split(events: &DataStream<Event>) -> SplitEvents {
    let person_tag = OutputTag::<Person>::new("persons");
    let auction_tag = OutputTag::<Auction>::new("auctions");
    let (p, a) = (person_tag.clone(), auction_tag.clone());
    let bids = events
        .process(
            move |e: Event, ctx: &mut ProcessContext, out: &mut Collector<Bid>| {
                match e {
                    Event::Person(person) => ctx.output(&p, person),
                    Event::Auction(auction) => ctx.output(&a, auction),
                    Event::Bid(bid) => out.collect(bid),
                }
                Ok(())
            },
        )
        .name("Split Events");
    SplitEvents {
        persons: bids.get_side_output(&person_tag),
        auctions: bids.get_side_output(&auction_tag),
        bids,
    }
}

/// The bids of an event stream.
pub fn bids(events: &DataStream<Event>) -> DataStream<Bid> {
    events
        .flat_map(|e: Event, out: &mut Collector<Bid>| {
            if let Event::Bid(b) = e {
                out.collect(b);
            }
        })
        .name("Bids")
}
