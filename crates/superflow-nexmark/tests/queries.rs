//! Every Nexmark query against an independent plain-Rust computation over the same
//! 100,000 events, at parallelism 1 and 2.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use superflow::prelude::*;
use superflow::Data;
use superflow_nexmark::queries::{self, beats, Winner, DOLLAR_TO_EURO, Q3_STATES};
use superflow_nexmark::{event_stream, Auction, Bid, Event, NexmarkSettings, Person};

const PARALLELISMS: [usize; 2] = [1, 2];

fn settings() -> NexmarkSettings {
    NexmarkSettings {
        events: 100_000,
        // 50 s of event time, so that the 10 s windows and sessions are many.
        events_per_second: 2_000,
        ..NexmarkSettings::default()
    }
}

fn run<T: Data>(p: usize, query: impl Fn(&DataStream<Event>) -> DataStream<T>) -> Vec<T> {
    run_with(p, settings(), query)
}

fn run_with<T: Data>(
    p: usize,
    settings: NexmarkSettings,
    query: impl Fn(&DataStream<Event>) -> DataStream<T>,
) -> Vec<T> {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(p);
    let events = event_stream(&env, &settings);
    match query(&events).execute_and_collect() {
        Ok(out) => out,
        Err(e) => panic!("the query failed at parallelism {p}: {e}"),
    }
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

struct Data3 {
    persons: Vec<Person>,
    auctions: Vec<Auction>,
    bids: Vec<Bid>,
}

fn data() -> Data3 {
    let mut d = Data3 {
        persons: Vec::new(),
        auctions: Vec::new(),
        bids: Vec::new(),
    };
    for e in settings().all_events() {
        match e {
            Event::Person(p) => d.persons.push(p),
            Event::Auction(a) => d.auctions.push(a),
            Event::Bid(b) => d.bids.push(b),
        }
    }
    d
}

fn reference_winners(d: &Data3) -> Vec<Winner> {
    let mut by_auction: BTreeMap<usize, Vec<&Bid>> = BTreeMap::new();
    for b in &d.bids {
        by_auction.entry(b.auction).or_default().push(b);
    }
    let mut winners = Vec::new();
    for a in &d.auctions {
        let mut best: Option<&Bid> = None;
        for b in by_auction.get(&a.id).into_iter().flatten() {
            if b.date_time >= a.date_time
                && b.date_time <= a.expires
                && best.is_none_or(|x| beats(b, x))
            {
                best = Some(b);
            }
        }
        if let Some(b) = best {
            winners.push((a.clone(), b.clone()));
        }
    }
    winners
}

fn window_start(t: u64, size: Duration) -> i64 {
    let t = t as i64;
    t - t.rem_euclid(size.as_millis() as i64)
}

#[test]
fn the_generator_splits_events_across_subtasks_exactly() {
    let d = data();
    assert_eq!(d.persons.len() + d.auctions.len() + d.bids.len(), 100_000);
    for p in PARALLELISMS {
        let out = run(p, |e| e.map(|e: Event| e.timestamp()));
        let expected: Vec<u64> = settings()
            .all_events()
            .iter()
            .map(Event::timestamp)
            .collect();
        assert_eq!(sorted(out), sorted(expected), "p={p}");
    }
}

#[test]
fn q0_passes_every_bid_through() {
    let d = data();
    let expected: Vec<_> = d
        .bids
        .iter()
        .map(|b| (b.auction, b.bidder, b.price, b.date_time, b.extra.clone()))
        .collect();
    for p in PARALLELISMS {
        assert_eq!(
            sorted(run(p, queries::q0)),
            sorted(expected.clone()),
            "p={p}"
        );
    }
}

#[test]
fn q1_converts_prices() {
    let d = data();
    let key = |t: &(usize, usize, f64, u64, String)| (t.0, t.1, t.2.to_bits(), t.3, t.4.clone());
    let expected: Vec<_> = d
        .bids
        .iter()
        .map(|b| {
            key(&(
                b.auction,
                b.bidder,
                DOLLAR_TO_EURO * b.price as f64,
                b.date_time,
                b.extra.clone(),
            ))
        })
        .collect();
    for p in PARALLELISMS {
        let out: Vec<_> = run(p, queries::q1).iter().map(key).collect();
        assert_eq!(sorted(out), sorted(expected.clone()), "p={p}");
    }
}

#[test]
fn q2_selects_every_123rd_auction() {
    let d = data();
    let expected: Vec<_> = d
        .bids
        .iter()
        .filter(|b| b.auction % 123 == 0)
        .map(|b| (b.auction, b.price))
        .collect();
    assert!(!expected.is_empty());
    for p in PARALLELISMS {
        assert_eq!(
            sorted(run(p, queries::q2)),
            sorted(expected.clone()),
            "p={p}"
        );
    }
}

#[test]
fn q3_joins_local_sellers_with_their_auctions() {
    let d = data();
    let sellers: BTreeMap<usize, &Person> = d
        .persons
        .iter()
        .filter(|p| Q3_STATES.contains(&p.state.as_str()))
        .map(|p| (p.id, p))
        .collect();
    let expected: Vec<_> = d
        .auctions
        .iter()
        .filter(|a| a.category == 10)
        .filter_map(|a| {
            sellers
                .get(&a.seller)
                .map(|p| (p.name.clone(), p.city.clone(), p.state.clone(), a.id))
        })
        .collect();
    assert!(!expected.is_empty());
    for p in PARALLELISMS {
        assert_eq!(
            sorted(run(p, queries::q3)),
            sorted(expected.clone()),
            "p={p}"
        );
    }
}

#[test]
fn q4_averages_winning_prices_per_category() {
    let d = data();
    let mut per_category: BTreeMap<usize, (u64, u64)> = BTreeMap::new();
    for (a, b) in reference_winners(&d) {
        let e = per_category.entry(a.category).or_default();
        e.0 += b.price as u64;
        e.1 += 1;
    }
    for p in PARALLELISMS {
        let out = run(p, queries::q4);
        let mut last: BTreeMap<usize, (f64, u64)> = BTreeMap::new();
        for (category, avg) in out {
            let e = last.entry(category).or_insert((0.0, 0));
            *e = (avg, e.1 + 1);
        }
        let expected: BTreeMap<usize, (f64, u64)> = per_category
            .iter()
            .map(|(&c, &(sum, n))| (c, (sum as f64 / n as f64, n)))
            .collect();
        assert_eq!(last, expected, "p={p}");
    }
}

#[test]
fn q5_finds_the_hottest_auctions_per_sliding_window() {
    let d = data();
    let (size, slide) = (
        queries::Q5_SIZE.as_millis() as i64,
        queries::Q5_SLIDE.as_millis() as i64,
    );
    let mut counts: BTreeMap<i64, BTreeMap<usize, u64>> = BTreeMap::new();
    for b in &d.bids {
        let t = b.date_time as i64;
        let mut start = t - t.rem_euclid(slide);
        while start > t - size {
            *counts
                .entry(start + size)
                .or_default()
                .entry(b.auction)
                .or_default() += 1;
            start -= slide;
        }
    }
    let mut expected = Vec::new();
    for (end, per_auction) in counts {
        let max = per_auction.values().copied().max().unwrap_or(0);
        for (auction, count) in per_auction {
            if count == max {
                expected.push((auction, count, end));
            }
        }
    }
    for p in PARALLELISMS {
        assert_eq!(
            sorted(run(p, queries::q5)),
            sorted(expected.clone()),
            "p={p}"
        );
    }
}

#[test]
fn q6_averages_each_sellers_last_three_closed_auctions() {
    let d = data();
    let mut closed: Vec<(usize, u64, usize, usize)> = reference_winners(&d)
        .iter()
        .map(|(a, b)| (a.seller, a.expires, a.id, b.price))
        .collect();
    closed.sort();
    let mut last: BTreeMap<usize, VecDeque<usize>> = BTreeMap::new();
    let mut expected = Vec::new();
    for (seller, _, _, price) in closed {
        let window = last.entry(seller).or_default();
        if window.len() == 3 {
            window.pop_front();
        }
        window.push_back(price);
        let avg = window.iter().sum::<usize>() as f64 / window.len() as f64;
        expected.push((seller, avg.to_bits()));
    }
    for p in PARALLELISMS {
        let out: Vec<_> = run(p, queries::q6)
            .into_iter()
            .map(|(s, avg)| (s, avg.to_bits()))
            .collect();
        assert_eq!(sorted(out), sorted(expected.clone()), "p={p}");
    }
}

#[test]
fn q7_reports_the_highest_bids_per_window() {
    let d = data();
    let mut best: BTreeMap<i64, (usize, Vec<&Bid>)> = BTreeMap::new();
    for b in &d.bids {
        let e = best
            .entry(window_start(b.date_time, queries::TUMBLE))
            .or_insert((0, Vec::new()));
        if b.price > e.0 || e.1.is_empty() {
            *e = (b.price, vec![b]);
        } else if b.price == e.0 {
            e.1.push(b);
        }
    }
    let expected: Vec<_> = best
        .values()
        .flat_map(|(_, bids)| bids.iter())
        .map(|b| (b.auction, b.price, b.bidder, b.date_time, b.extra.clone()))
        .collect();
    for p in PARALLELISMS {
        assert_eq!(
            sorted(run(p, queries::q7)),
            sorted(expected.clone()),
            "p={p}"
        );
    }
}

#[test]
fn q8_finds_new_users_who_opened_auctions() {
    let d = data();
    let sellers: BTreeSet<(usize, i64)> = d
        .auctions
        .iter()
        .map(|a| (a.seller, window_start(a.date_time, queries::TUMBLE)))
        .collect();
    let expected: Vec<_> = d
        .persons
        .iter()
        .map(|p| {
            (
                p.id,
                p.name.clone(),
                window_start(p.date_time, queries::TUMBLE),
            )
        })
        .filter(|(id, _, start)| sellers.contains(&(*id, *start)))
        .collect();
    assert!(!expected.is_empty());
    for p in PARALLELISMS {
        assert_eq!(
            sorted(run(p, queries::q8)),
            sorted(expected.clone()),
            "p={p}"
        );
    }
}

#[test]
fn q9_emits_each_auctions_winning_bid() {
    let d = data();
    let key = |(a, b): &Winner| (a.id, b.bidder, b.price, b.date_time);
    let expected: Vec<_> = reference_winners(&d).iter().map(key).collect();
    assert!(expected.len() > 100);
    for p in PARALLELISMS {
        let out: Vec<_> = run(p, queries::q9).iter().map(key).collect();
        assert_eq!(sorted(out), sorted(expected.clone()), "p={p}");
    }
}

#[test]
fn q11_counts_bids_per_bidder_session() {
    let d = data();
    let gap = queries::Q11_GAP.as_millis() as i64;
    let mut times: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for b in &d.bids {
        times.entry(b.bidder).or_default().push(b.date_time as i64);
    }
    let mut expected = Vec::new();
    for (bidder, mut ts) in times {
        ts.sort();
        let (mut start, mut end, mut count) = (ts[0], ts[0] + gap, 0u64);
        for t in ts {
            if t > end {
                expected.push((bidder, count, start, end));
                (start, end, count) = (t, t + gap, 0);
            }
            end = end.max(t + gap);
            count += 1;
        }
        expected.push((bidder, count, start, end));
    }
    for p in PARALLELISMS {
        assert_eq!(
            sorted(run(p, queries::q11)),
            sorted(expected.clone()),
            "p={p}"
        );
    }
}

#[test]
fn q12_counts_every_bid_once_in_processing_time_windows() {
    let d = data();
    let mut per_bidder: BTreeMap<usize, u64> = BTreeMap::new();
    for b in &d.bids {
        *per_bidder.entry(b.bidder).or_default() += 1;
    }
    for p in PARALLELISMS {
        let settings = NexmarkSettings {
            linger: Duration::from_millis(300),
            ..settings()
        };
        let out = run_with(p, settings, |e| queries::q12(e, Duration::from_millis(50)));
        let mut counted: BTreeMap<usize, u64> = BTreeMap::new();
        for (bidder, count, start, end) in out {
            assert_eq!(end - start, 50);
            *counted.entry(bidder).or_default() += count;
        }
        assert_eq!(counted, per_bidder, "p={p}");
    }
}
