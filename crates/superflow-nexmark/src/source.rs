//! The Nexmark event source: the `nexmark` crate's generator, split across subtasks
//! (subtask `i` of `p` makes events `i, i + p, i + 2p, ...`), bounded to a number of
//! events, with event timestamps and watermarks.

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexmark::config::NexmarkConfig;
use nexmark::event::{Auction, Bid, Event, Person};
use nexmark::EventGenerator;
use superflow::prelude::*;
use superflow::{SourceError, SourceFunction, SourcePoll, SourceReader};

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

struct NexmarkReader {
    generator: EventGenerator,
    next: u64,
    step: u64,
    total: u64,
    linger: Duration,
    done_at: Option<Instant>,
}

impl SourceFunction<Event> for NexmarkSource {
    fn name(&self) -> String {
        "Nexmark Source".into()
    }

    fn create_reader(
        &self,
        subtask: usize,
        parallelism: usize,
    ) -> Result<Box<dyn SourceReader<Event>>, SourceError> {
        let generator = EventGenerator::new(self.settings.config())
            .with_offset(subtask as u64)
            .with_step(parallelism as u64);
        Ok(Box::new(NexmarkReader {
            generator,
            next: subtask as u64,
            step: parallelism as u64,
            total: self.settings.events,
            linger: self.settings.linger,
            done_at: None,
        }))
    }
}

impl SourceReader<Event> for NexmarkReader {
    fn poll(&mut self, out: &mut Vec<Event>, max: usize) -> Result<SourcePoll, SourceError> {
        let mut made = 0;
        while made < max && self.next < self.total {
            match self.generator.next() {
                Some(event) => out.push(event),
                None => return Ok(SourcePoll::Finished),
            }
            self.next += self.step;
            made += 1;
        }
        if self.next < self.total {
            return Ok(SourcePoll::Ready);
        }
        let done_at = *self.done_at.get_or_insert_with(Instant::now);
        if done_at.elapsed() >= self.linger {
            Ok(SourcePoll::Finished)
        } else {
            Ok(SourcePoll::Pending(Duration::from_millis(10)))
        }
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
