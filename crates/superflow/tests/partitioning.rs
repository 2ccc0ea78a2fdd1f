//! Every partitioner at parallelism 1, 2 and 4: where records go, and that none is lost.

use std::collections::{BTreeMap, BTreeSet};

use superflow::prelude::*;

const PARALLELISMS: [usize; 3] = [1, 2, 4];

fn env(p: usize) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(p);
    env
}

/// Tags each record with the subtask that received it.
fn tag_subtask(stream: &DataStream<i64>) -> DataStream<(usize, i64)> {
    stream.process(
        |x: i64, ctx: &mut ProcessContext, out: &mut Collector<(usize, i64)>| {
            out.collect((ctx.runtime_context().index_of_this_subtask(), x));
            Ok(())
        },
    )
}

fn by_subtask(records: &[(usize, i64)]) -> BTreeMap<usize, Vec<i64>> {
    let mut map: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for (s, x) in records {
        map.entry(*s).or_default().push(*x);
    }
    map
}

fn values(records: &[(usize, i64)]) -> Vec<i64> {
    let mut v: Vec<i64> = records.iter().map(|r| r.1).collect();
    v.sort();
    v
}

#[test]
fn forward_keeps_records_on_their_subtask() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let source = tag_subtask(&env.from_sequence(0, 99));
        let out = source
            .forward()
            .process(
                |(s, x): (usize, i64),
                 ctx: &mut ProcessContext,
                 out: &mut Collector<(usize, usize, i64)>| {
                    out.collect((s, ctx.runtime_context().index_of_this_subtask(), x));
                    Ok(())
                },
            )
            .execute_and_collect()?;
        assert_eq!(out.len(), 100);
        assert!(out.iter().all(|(a, b, _)| a == b), "p={p}");
    }
    Ok(())
}

#[test]
fn forward_rejects_a_parallelism_change() {
    let env = env(2);
    env.from_sequence(0, 9)
        .forward()
        .map(|x: i64| x)
        .set_parallelism(1)
        .print();
    let err = env
        .execute("bad forward")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("forward partitioning does not allow a change of parallelism"),
        "{err}"
    );
    assert!(
        err.contains("'Sequence Source' (operator 0) has parallelism 2")
            && err.contains("'Map' (operator 1) has 1"),
        "{err}"
    );
}

#[test]
fn rebalance_spreads_evenly() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let source = env.from_sequence(0, 999).set_parallelism(1);
        let out = tag_subtask(&source.rebalance()).execute_and_collect()?;
        assert_eq!(values(&out), (0..1000).collect::<Vec<_>>());
        for (_, records) in by_subtask(&out) {
            assert_eq!(records.len(), 1000 / p, "p={p}");
        }
    }
    Ok(())
}

#[test]
fn implicit_rebalance_between_different_parallelism() -> Result<(), JobError> {
    let env = env(4);
    let source = env.from_elements((0..100i64).collect());
    let out = tag_subtask(&source.map(|x: i64| x)).execute_and_collect()?;
    assert_eq!(values(&out), (0..100).collect::<Vec<_>>());
    assert_eq!(
        by_subtask(&out).len(),
        4,
        "the map at parallelism 4 gets records from a source at parallelism 1"
    );
    Ok(())
}

#[test]
fn rescale_stays_within_local_groups() -> Result<(), JobError> {
    let env = env(4);
    let source = tag_subtask(&env.from_sequence(0, 399).set_parallelism(2)).set_parallelism(2);
    let out = source
        .rescale()
        .process(
            |(s, x): (usize, i64),
             ctx: &mut ProcessContext,
             out: &mut Collector<(usize, usize, i64)>| {
                out.collect((s, ctx.runtime_context().index_of_this_subtask(), x));
                Ok(())
            },
        )
        .execute_and_collect()?;
    assert_eq!(out.len(), 400);
    for (from, to, _) in &out {
        // Upstream subtask 0 feeds 0 and 1; upstream subtask 1 feeds 2 and 3.
        assert_eq!(to / 2, *from, "rescale sent from {from} to {to}");
    }
    let targets: BTreeSet<usize> = out.iter().map(|r| r.1).collect();
    assert_eq!(targets.len(), 4);
    Ok(())
}

#[test]
fn shuffle_loses_nothing_and_spreads() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let out = tag_subtask(&env.from_sequence(0, 1999).shuffle()).execute_and_collect()?;
        assert_eq!(values(&out), (0..2000).collect::<Vec<_>>());
        assert_eq!(by_subtask(&out).len(), p, "p={p}");
    }
    Ok(())
}

#[test]
fn broadcast_copies_to_every_subtask() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let source = env.from_elements(vec![1i64, 2, 3]);
        let out = tag_subtask(&source.broadcast()).execute_and_collect()?;
        assert_eq!(out.len(), 3 * p, "p={p}");
        for (_, records) in by_subtask(&out) {
            let mut records = records;
            records.sort();
            assert_eq!(records, vec![1, 2, 3]);
        }
    }
    Ok(())
}

#[test]
fn global_sends_everything_to_subtask_zero() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let out = tag_subtask(&env.from_sequence(0, 99).global()).execute_and_collect()?;
        assert_eq!(values(&out), (0..100).collect::<Vec<_>>());
        assert!(out.iter().all(|(s, _)| *s == 0), "p={p}");
    }
    Ok(())
}

#[test]
fn key_by_puts_each_key_on_the_subtask_of_its_key_group() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let keyed = env
            .from_sequence(0, 999)
            .key_by(|x: &i64| x % 37)
            .as_stream();
        let out = tag_subtask(&keyed).execute_and_collect()?;
        assert_eq!(values(&out), (0..1000).collect::<Vec<_>>());
        for (subtask, x) in &out {
            let expected = superflow::core::subtask_for_key(&(x % 37), 128, p);
            assert_eq!(*subtask, expected, "key {} at p={p}", x % 37);
        }
    }
    Ok(())
}

#[test]
fn custom_partitioner_decides() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let partitioned = env
            .from_sequence(0, 99)
            .partition_custom(|key: &i64, n: usize| (*key as usize) % n, |x: &i64| x / 10);
        let out = tag_subtask(&partitioned).execute_and_collect()?;
        assert_eq!(values(&out), (0..100).collect::<Vec<_>>());
        for (subtask, x) in &out {
            assert_eq!(*subtask, ((x / 10) as usize) % p);
        }
    }
    Ok(())
}

#[test]
fn custom_partitioner_out_of_range_fails_the_job() {
    let env = env(2);
    env.from_sequence(0, 9)
        .partition_custom(|_k: &i64, n: usize| n + 3, |x: &i64| *x)
        .print();
    let err = env
        .execute("bad partitioner")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("partitioner chose subtask 5, but only 2 exist"),
        "{err}"
    );
}
