//! Nexmark queries q0–q9, q11 and q12, written as a user would write them with the
//! DataStream API. Each follows the meaning of Flink's Nexmark SQL; where a streaming
//! SQL query emits updates, the DataStream version emits the final value when event
//! time closes it (an auction's end, a window's end), which is what the updates
//! converge to.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use nexmark::event::{Auction, Bid, Event, Person};
use rustc_hash::FxHashMap;
use superflow::prelude::*;
use superflow::KeyedCoProcessFunction;

use crate::source::{bids, split};

/// q0, pass-through: every bid's auction, bidder, price, time and extra.
pub type Q0 = (usize, usize, usize, u64, String);

/// q0: `SELECT auction, bidder, price, dateTime, extra FROM bid`.
pub fn q0(events: &DataStream<Event>) -> DataStream<Q0> {
    bids(events).map(|b: Bid| (b.auction, b.bidder, b.price, b.date_time, b.extra))
}

/// q1, currency conversion: the price in euros.
pub type Q1 = (usize, usize, f64, u64, String);

/// The dollar-to-euro rate of q1.
pub const DOLLAR_TO_EURO: f64 = 0.908;

/// q1: `SELECT auction, bidder, 0.908 * price, dateTime, extra FROM bid`.
pub fn q1(events: &DataStream<Event>) -> DataStream<Q1> {
    bids(events).map(|b: Bid| {
        (
            b.auction,
            b.bidder,
            DOLLAR_TO_EURO * b.price as f64,
            b.date_time,
            b.extra,
        )
    })
}

/// q2, selection: bids on every 123rd auction.
pub fn q2(events: &DataStream<Event>) -> DataStream<(usize, usize)> {
    bids(events)
        .filter(|b: &Bid| b.auction % 123 == 0)
        .map(|b: Bid| (b.auction, b.price))
}

/// q3 output: the seller's name, city and state, and the auction id.
pub type Q3 = (String, String, String, usize);

/// The states q3 looks for (the `nexmark` crate writes them in lower case).
pub const Q3_STATES: [&str; 3] = ["or", "id", "ca"];

/// q3, local item suggestion: auctions of category 10 by sellers in OR, ID or CA, as an
/// unwindowed join of persons and auctions on the seller.
pub fn q3(events: &DataStream<Event>) -> DataStream<Q3> {
    let split = split(events);
    let sellers = split
        .persons
        .filter(|p: &Person| Q3_STATES.contains(&p.state.as_str()));
    let items = split.auctions.filter(|a: &Auction| a.category == 10);
    sellers
        .key_by(|p: &Person| p.id)
        .connect(&items.key_by(|a: &Auction| a.seller))
        .process(LocalItems::default())
        .name("Q3 Join")
}

/// The join state of q3 for one subtask: each seller, and the auctions that arrived
/// before their seller.
#[derive(Clone, Default)]
struct LocalItems {
    sellers: FxHashMap<usize, (String, String, String)>,
    waiting: FxHashMap<usize, Vec<usize>>,
}

impl KeyedCoProcessFunction<usize, Person, Auction, Q3> for LocalItems {
    fn process_element1(
        &mut self,
        p: Person,
        _: &mut KeyedProcessContext<usize>,
        out: &mut Collector<Q3>,
    ) -> Result<(), UserError> {
        for auction in self.waiting.remove(&p.id).unwrap_or_default() {
            out.collect((p.name.clone(), p.city.clone(), p.state.clone(), auction));
        }
        self.sellers.insert(p.id, (p.name, p.city, p.state));
        Ok(())
    }

    fn process_element2(
        &mut self,
        a: Auction,
        _: &mut KeyedProcessContext<usize>,
        out: &mut Collector<Q3>,
    ) -> Result<(), UserError> {
        match self.sellers.get(&a.seller) {
            Some((name, city, state)) => {
                out.collect((name.clone(), city.clone(), state.clone(), a.id))
            }
            None => self.waiting.entry(a.seller).or_default().push(a.id),
        }
        Ok(())
    }
}

/// The winning bid of an auction: the highest price, the earliest on ties, among the
/// bids placed between the auction's start and its end.
pub type Winner = (Auction, Bid);

/// Whether bid `b` beats bid `best` (higher price, then earlier, then lower bidder).
pub fn beats(b: &Bid, best: &Bid) -> bool {
    (
        b.price,
        std::cmp::Reverse(b.date_time),
        std::cmp::Reverse(b.bidder),
    ) > (
        best.price,
        std::cmp::Reverse(best.date_time),
        std::cmp::Reverse(best.bidder),
    )
}

/// Joins auctions with their bids and emits each auction's winning bid when the
/// auction ends (event time reaches `expires`). Shared by q4, q6 and q9.
pub fn winning_bids(events: &DataStream<Event>) -> DataStream<Winner> {
    let split = split(events);
    split
        .auctions
        .key_by(|a: &Auction| a.id)
        .connect(&split.bids.key_by(|b: &Bid| b.auction))
        .process(WinningBids::default())
        .name("Winning Bids")
}

#[derive(Clone, Default)]
struct WinningBids {
    open: FxHashMap<usize, (Auction, Option<Bid>)>,
    /// Bids whose auction has not arrived yet; an auction starts no later than its
    /// bids, so they wait until the watermark passes them.
    early: FxHashMap<usize, Vec<Bid>>,
}

impl WinningBids {
    fn offer(entry: &mut (Auction, Option<Bid>), bid: Bid) {
        let (auction, best) = entry;
        if bid.date_time < auction.date_time || bid.date_time > auction.expires {
            return;
        }
        if best.as_ref().is_none_or(|b| beats(&bid, b)) {
            *best = Some(bid);
        }
    }
}

impl KeyedCoProcessFunction<usize, Auction, Bid, Winner> for WinningBids {
    fn process_element1(
        &mut self,
        a: Auction,
        ctx: &mut KeyedProcessContext<usize>,
        _: &mut Collector<Winner>,
    ) -> Result<(), UserError> {
        ctx.timer_service()
            .register_event_time_timer(a.expires as i64);
        let id = a.id;
        let mut entry = (a, None);
        for bid in self.early.remove(&id).unwrap_or_default() {
            Self::offer(&mut entry, bid);
        }
        self.open.insert(id, entry);
        Ok(())
    }

    fn process_element2(
        &mut self,
        b: Bid,
        ctx: &mut KeyedProcessContext<usize>,
        _: &mut Collector<Winner>,
    ) -> Result<(), UserError> {
        match self.open.get_mut(&b.auction) {
            Some(entry) => Self::offer(entry, b),
            None => {
                ctx.timer_service()
                    .register_event_time_timer(b.date_time as i64);
                self.early.entry(b.auction).or_default().push(b);
            }
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedProcessContext<usize>,
        out: &mut Collector<Winner>,
    ) -> Result<(), UserError> {
        let id = *ctx.get_current_key();
        if let Some(early) = self.early.get_mut(&id) {
            early.retain(|b| b.date_time as i64 > timestamp);
            if early.is_empty() {
                self.early.remove(&id);
            }
        }
        if self
            .open
            .get(&id)
            .is_some_and(|(a, _)| a.expires as i64 == timestamp)
        {
            if let Some((auction, Some(bid))) = self.open.remove(&id) {
                out.collect((auction, bid));
            }
        }
        Ok(())
    }
}

/// q4, average price per category: the running average, per category, of the
/// winning prices of closed auctions.
pub fn q4(events: &DataStream<Event>) -> DataStream<(usize, f64)> {
    winning_bids(events)
        .map(|(a, b): Winner| (a.category, b.price as u64, 1u64))
        .key_by(|t: &(usize, u64, u64)| t.0)
        .reduce(|x: (usize, u64, u64), y: (usize, u64, u64)| (x.0, x.1 + y.1, x.2 + y.2))
        .map(|(category, sum, count): (usize, u64, u64)| (category, sum as f64 / count as f64))
}

/// q5 output: an auction with the most bids in a window, the count and the window's end.
pub type Q5 = (usize, u64, i64);

/// The window of q5: 10 s, sliding every 2 s.
pub const Q5_SIZE: Duration = Duration::from_secs(10);
/// The slide of q5.
pub const Q5_SLIDE: Duration = Duration::from_secs(2);

/// Counts bids per auction and reports the auction's count and the window's end.
#[derive(Clone)]
struct CountWithWindow;

impl ProcessWindowFunction<u64, (usize, u64, i64), usize, TimeWindow> for CountWithWindow {
    fn process(
        &mut self,
        key: &usize,
        ctx: &mut ProcessWindowContext<'_, usize, TimeWindow>,
        counts: &[u64],
        out: &mut Collector<(usize, u64, i64)>,
    ) -> Result<(), UserError> {
        for &count in counts {
            out.collect((*key, count, ctx.window().end));
        }
        Ok(())
    }
}

/// Counts the records of a window.
pub struct CountAggregate;

impl<T> AggregateFunction<T, u64, u64> for CountAggregate {
    fn create_accumulator(&self) -> u64 {
        0
    }
    fn add(&self, _: T, acc: &mut u64) {
        *acc += 1;
    }
    fn get_result(&self, acc: &u64) -> u64 {
        *acc
    }
    fn merge(&self, acc: &mut u64, other: u64) {
        *acc += other;
    }
}

/// q5, hot items: per sliding window, the auctions with the most bids.
pub fn q5(events: &DataStream<Event>) -> DataStream<Q5> {
    bids(events)
        .key_by(|b: &Bid| b.auction)
        .window(SlidingEventTimeWindows::of(Q5_SIZE, Q5_SLIDE))
        .aggregate_with_process(CountAggregate, CountWithWindow)
        .name("Bids per Auction")
        .key_by(|t: &(usize, u64, i64)| t.2)
        .process(HottestPerWindow::default())
        .name("Hottest Auctions")
}

/// Keeps, per window end, the auctions with the highest count; emits them when the
/// watermark passes the window.
#[derive(Clone, Default)]
struct HottestPerWindow {
    best: FxHashMap<i64, (u64, Vec<usize>)>,
}

impl KeyedProcessFunction<i64, (usize, u64, i64), Q5> for HottestPerWindow {
    fn process_element(
        &mut self,
        (auction, count, end): (usize, u64, i64),
        ctx: &mut KeyedProcessContext<i64>,
        _: &mut Collector<Q5>,
    ) -> Result<(), UserError> {
        let entry = self.best.entry(end).or_insert_with(|| {
            ctx.timer_service().register_event_time_timer(end - 1);
            (0, Vec::new())
        });
        if count > entry.0 {
            *entry = (count, vec![auction]);
        } else if count == entry.0 {
            entry.1.push(auction);
        }
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        _: &mut KeyedProcessContext<i64>,
        out: &mut Collector<Q5>,
    ) -> Result<(), UserError> {
        let end = timestamp + 1;
        if let Some((count, auctions)) = self.best.remove(&end) {
            for auction in auctions {
                out.collect((auction, count, end));
            }
        }
        Ok(())
    }
}

/// q6, average selling price by seller: after each of a seller's auctions closes, the
/// average winning price of the seller's last 3 closed auctions (in closing order).
pub fn q6(events: &DataStream<Event>) -> DataStream<(usize, f64)> {
    winning_bids(events)
        .key_by(|w: &Winner| w.0.seller)
        .process(LastThreeClosed::default())
        .name("Average Selling Price")
}

#[derive(Clone, Default)]
struct LastThreeClosed {
    /// Closed auctions not yet counted, per seller, by (end, auction id).
    pending: FxHashMap<usize, BTreeMap<(u64, usize), usize>>,
    last: FxHashMap<usize, VecDeque<usize>>,
}

impl KeyedProcessFunction<usize, Winner, (usize, f64)> for LastThreeClosed {
    fn process_element(
        &mut self,
        (a, b): Winner,
        ctx: &mut KeyedProcessContext<usize>,
        _: &mut Collector<(usize, f64)>,
    ) -> Result<(), UserError> {
        // Winners of one end time may come from several subtasks: order them first.
        ctx.timer_service()
            .register_event_time_timer(a.expires as i64);
        self.pending
            .entry(a.seller)
            .or_default()
            .insert((a.expires, a.id), b.price);
        Ok(())
    }

    fn on_timer(
        &mut self,
        timestamp: i64,
        ctx: &mut KeyedProcessContext<usize>,
        out: &mut Collector<(usize, f64)>,
    ) -> Result<(), UserError> {
        let seller = *ctx.get_current_key();
        let Some(pending) = self.pending.get_mut(&seller) else {
            return Ok(());
        };
        let later = pending.split_off(&(timestamp as u64 + 1, 0));
        let due = std::mem::replace(pending, later);
        if pending.is_empty() {
            self.pending.remove(&seller);
        }
        let last = self.last.entry(seller).or_default();
        for price in due.into_values() {
            if last.len() == 3 {
                last.pop_front();
            }
            last.push_back(price);
            let avg = last.iter().sum::<usize>() as f64 / last.len() as f64;
            out.collect((seller, avg));
        }
        Ok(())
    }
}

/// The window of q7 and q8: 10 s, tumbling.
pub const TUMBLE: Duration = Duration::from_secs(10);

/// The highest bids of a window, with their price.
#[derive(Clone)]
struct HighestBids;

impl AggregateFunction<Bid, (usize, Vec<Bid>), Vec<Bid>> for HighestBids {
    fn create_accumulator(&self) -> (usize, Vec<Bid>) {
        (0, Vec::new())
    }
    fn add(&self, b: Bid, acc: &mut (usize, Vec<Bid>)) {
        if b.price > acc.0 || acc.1.is_empty() {
            *acc = (b.price, vec![b]);
        } else if b.price == acc.0 {
            acc.1.push(b);
        }
    }
    fn get_result(&self, acc: &(usize, Vec<Bid>)) -> Vec<Bid> {
        acc.1.clone()
    }
    fn merge(&self, acc: &mut (usize, Vec<Bid>), other: (usize, Vec<Bid>)) {
        for b in other.1 {
            self.add(b, acc);
        }
    }
}

/// q7 output: a highest bid of a window (auction, price, bidder, time, extra).
pub type Q7 = (usize, usize, usize, u64, String);

/// q7, highest bid: the bids with the highest price of each 10 s window. Each subtask
/// pre-aggregates per auction; one subtask picks the maximum of the window.
pub fn q7(events: &DataStream<Event>) -> DataStream<Q7> {
    bids(events)
        .key_by(|b: &Bid| b.auction)
        .window(TumblingEventTimeWindows::of(TUMBLE))
        .aggregate(HighestBids)
        .name("Highest Bids per Auction")
        .flat_map(|bids: Vec<Bid>, out: &mut Collector<Bid>| {
            for b in bids {
                out.collect(b);
            }
        })
        .window_all(TumblingEventTimeWindows::of(TUMBLE))
        .aggregate(HighestBids)
        .name("Highest Bids")
        .flat_map(|bids: Vec<Bid>, out: &mut Collector<Q7>| {
            for b in bids {
                out.collect((b.auction, b.price, b.bidder, b.date_time, b.extra));
            }
        })
}

/// q8 output: a new person who opened an auction in the same window (id, name, window start).
pub type Q8 = (usize, String, i64);

/// q8, monitor new users: persons who joined and opened an auction in one 10 s window.
pub fn q8(events: &DataStream<Event>) -> DataStream<Q8> {
    let split = split(events);
    split
        .persons
        .co_group(&split.auctions)
        .where_(|p: &Person| p.id)
        .equal_to(|a: &Auction| a.seller)
        .window(TumblingEventTimeWindows::of(TUMBLE))
        .co_group(
            |ps: &[Person], auctions: &[Auction], out: &mut Collector<Q8>| {
                if !auctions.is_empty() {
                    for p in ps {
                        let t = p.date_time as i64;
                        let start = t - t.rem_euclid(TUMBLE.as_millis() as i64);
                        out.collect((p.id, p.name.clone(), start));
                    }
                }
                Ok(())
            },
        )
}

/// q9, winning bids: each auction with its winning bid.
pub fn q9(events: &DataStream<Event>) -> DataStream<Winner> {
    winning_bids(events)
}

/// q11 and q12 output: a bidder, its bid count, and the window's start and end.
pub type BidderCount = (usize, u64, i64, i64);

/// The session gap of q11.
pub const Q11_GAP: Duration = Duration::from_secs(10);

/// Reports a bidder's count with its window.
#[derive(Clone)]
struct CountPerBidder;

impl ProcessWindowFunction<u64, BidderCount, usize, TimeWindow> for CountPerBidder {
    fn process(
        &mut self,
        bidder: &usize,
        ctx: &mut ProcessWindowContext<'_, usize, TimeWindow>,
        counts: &[u64],
        out: &mut Collector<BidderCount>,
    ) -> Result<(), UserError> {
        let w = *ctx.window();
        for &count in counts {
            out.collect((*bidder, count, w.start, w.end));
        }
        Ok(())
    }
}

/// q11, user sessions: bids per bidder per session (10 s gap).
pub fn q11(events: &DataStream<Event>) -> DataStream<BidderCount> {
    bids(events)
        .key_by(|b: &Bid| b.bidder)
        .window(EventTimeSessionWindows::with_gap(Q11_GAP))
        .aggregate_with_process(CountAggregate, CountPerBidder)
        .name("Bidder Sessions")
}

/// q12, processing-time windows: bids per bidder per `window` of wall-clock time
/// (10 s in Nexmark).
pub fn q12(events: &DataStream<Event>, window: Duration) -> DataStream<BidderCount> {
    bids(events)
        .key_by(|b: &Bid| b.bidder)
        .window(TumblingProcessingTimeWindows::of(window))
        .aggregate_with_process(CountAggregate, CountPerBidder)
        .name("Bidder Counts")
}
