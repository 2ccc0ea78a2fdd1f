//! Every transformation, at parallelism 1, 2 and 4, checked against the expected output.

use std::collections::BTreeMap;

use superflow::prelude::*;

const PARALLELISMS: [usize; 3] = [1, 2, 4];

fn env(p: usize) -> StreamExecutionEnvironment {
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(p);
    env
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

#[test]
fn seed_job_maps_every_element() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let data = env.from_elements(vec![("a", 1), ("a", 2), ("b", 3), ("b", 4)]);
        let out = data.map(|(k, v)| (k, v % 2 == 0)).execute_and_collect()?;
        assert_eq!(
            sorted(out),
            vec![("a", false), ("a", true), ("b", false), ("b", true)],
            "p={p}"
        );
    }
    Ok(())
}

#[test]
fn map_filter_flat_map() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let out = env
            .from_sequence(1, 100)
            .map(|x: i64| x * 3)
            .filter(|x: &i64| x % 2 == 0)
            .flat_map(|x: i64, out: &mut Collector<i64>| {
                out.collect(x);
                out.collect(-x);
            })
            .execute_and_collect()?;
        let mut expected: Vec<i64> = (1..=100)
            .map(|x| x * 3)
            .filter(|x| x % 2 == 0)
            .flat_map(|x| [x, -x])
            .collect();
        expected.sort();
        assert_eq!(sorted(out), expected, "p={p}");
    }
    Ok(())
}

#[test]
fn chained_operators_form_one_operator() -> Result<(), JobError> {
    let env = env(2);
    env.from_sequence(1, 10)
        .map(|x: i64| x + 1)
        .filter(|x: &i64| *x > 0)
        .map(|x: i64| x * 2)
        .print();
    let plan = env.get_execution_plan()?;
    assert_eq!(
        plan,
        vec![
            "Sequence Source (parallelism 2)",
            "Map -> Filter -> Map -> Print to Std. Out (parallelism 2)"
        ]
    );

    let env = self::env(2);
    env.from_sequence(1, 10)
        .map(|x: i64| x + 1)
        .disable_chaining()
        .filter(|x: &i64| *x > 0)
        .start_new_chain()
        .print();
    let plan = env.get_execution_plan()?;
    assert_eq!(
        plan,
        vec![
            "Sequence Source (parallelism 2)",
            "Map (parallelism 2)",
            "Filter -> Print to Std. Out (parallelism 2)"
        ]
    );

    let env = self::env(2);
    env.from_sequence(1, 10)
        .map(|x: i64| x + 1)
        .set_parallelism(1)
        .filter(|x: &i64| *x > 0)
        .print();
    let plan = env.get_execution_plan()?;
    assert_eq!(
        plan,
        vec![
            "Sequence Source (parallelism 2)",
            "Map (parallelism 1)",
            "Filter -> Print to Std. Out (parallelism 2)"
        ]
    );
    Ok(())
}

#[derive(Clone)]
struct EvenOdd {
    odd: OutputTag<String>,
    opened: bool,
}

impl ProcessFunction<i64, i64> for EvenOdd {
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        self.opened = true;
        Ok(())
    }

    fn process_element(
        &mut self,
        value: i64,
        ctx: &mut ProcessContext,
        out: &mut Collector<i64>,
    ) -> Result<(), UserError> {
        if !self.opened {
            return Err("process_element before open".into());
        }
        if value % 2 == 0 {
            out.collect(value);
        } else {
            ctx.output(&self.odd, format!("odd {value}"));
        }
        Ok(())
    }
}

#[test]
fn process_function_with_side_output() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let odd = OutputTag::<String>::new("odd");
        let main = env.from_sequence(1, 20).process(EvenOdd {
            odd: odd.clone(),
            opened: false,
        });
        let side = main.get_side_output(&odd);
        let evens = main.map(|x: i64| format!("even {x}"));
        let out = evens.union(&[&side]).execute_and_collect()?;
        let mut expected: Vec<String> = (1..=20)
            .map(|x| {
                if x % 2 == 0 {
                    format!("even {x}")
                } else {
                    format!("odd {x}")
                }
            })
            .collect();
        expected.sort();
        assert_eq!(sorted(out), expected, "p={p}");
    }
    Ok(())
}

#[test]
fn process_closure() -> Result<(), JobError> {
    let env = env(2);
    let out = env
        .from_sequence(1, 5)
        .process(
            |x: i64, _ctx: &mut ProcessContext, out: &mut Collector<String>| {
                out.collect(x.to_string());
                Ok(())
            },
        )
        .execute_and_collect()?;
    assert_eq!(sorted(out), vec!["1", "2", "3", "4", "5"]);
    Ok(())
}

#[test]
fn union_of_three_streams() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let a = env.from_sequence(1, 10);
        let b = env.from_sequence(11, 20);
        let c = env.from_elements(vec![21i64, 22]);
        let out = a.union(&[&b, &c]).execute_and_collect()?;
        assert_eq!(sorted(out), (1..=22).collect::<Vec<i64>>(), "p={p}");
    }
    Ok(())
}

#[test]
fn connect_co_map_and_co_flat_map() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let numbers = env.from_sequence(1, 5);
        let words = env.from_elements(vec!["x".to_string(), "yy".to_string()]);
        let out = numbers
            .connect(&words)
            .map((
                |n: i64| format!("n{n}"),
                |w: String| format!("w{}", w.len()),
            ))
            .execute_and_collect()?;
        assert_eq!(
            sorted(out),
            vec!["n1", "n2", "n3", "n4", "n5", "w1", "w2"],
            "p={p}"
        );

        let env = self::env(p);
        let numbers = env.from_sequence(1, 3);
        let words = env.from_elements(vec!["ab".to_string()]);
        let out = numbers
            .connect(&words)
            .flat_map((
                |n: i64, out: &mut Collector<String>| {
                    for _ in 0..n {
                        out.collect(n.to_string())
                    }
                },
                |w: String, out: &mut Collector<String>| {
                    w.chars().for_each(|c| out.collect(c.to_string()))
                },
            ))
            .execute_and_collect()?;
        assert_eq!(
            sorted(out),
            vec!["1", "2", "2", "3", "3", "3", "a", "b"],
            "p={p}"
        );
    }
    Ok(())
}

#[test]
fn connected_streams_keyed_meet_by_key() -> Result<(), JobError> {
    #[derive(Clone)]
    struct Tagger;
    impl CoMapFunction<(String, i64), (String, i64), (String, usize)> for Tagger {
        fn map1(&mut self, v: (String, i64)) -> (String, usize) {
            (v.0, 1)
        }
        fn map2(&mut self, v: (String, i64)) -> (String, usize) {
            (v.0, 2)
        }
    }
    let env = env(4);
    let a = env.from_collection((0..40).map(|i| (format!("k{}", i % 5), i)));
    let b = env.from_collection((0..40).map(|i| (format!("k{}", i % 5), i)));
    let out = a
        .connect(&b)
        .key_by(
            |x: &(String, i64)| x.0.clone(),
            |x: &(String, i64)| x.0.clone(),
        )
        .map(Tagger)
        .execute_and_collect()?;
    assert_eq!(out.len(), 80);
    Ok(())
}

fn final_per_key<K: Ord + Clone, V: Clone>(updates: &[(K, V, usize)]) -> BTreeMap<K, V> {
    // The update with the highest count is the key's final value.
    let mut best: BTreeMap<K, (usize, V)> = BTreeMap::new();
    for (k, v, c) in updates {
        let e = best.entry(k.clone()).or_insert((0, v.clone()));
        if *c >= e.0 {
            *e = (*c, v.clone());
        }
    }
    best.into_iter().map(|(k, (_, v))| (k, v)).collect()
}

#[test]
fn keyed_rolling_reduce_emits_every_update() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let out = env
            .from_collection(vec![
                ("a".to_string(), 1i64),
                ("b".into(), 10),
                ("a".into(), 2),
                ("a".into(), 3),
                ("b".into(), 20),
            ])
            .key_by(|t: &(String, i64)| t.0.clone())
            .reduce(|a: (String, i64), b: (String, i64)| (a.0, a.1 + b.1))
            .execute_and_collect()?;
        let expected = vec![
            ("a".to_string(), 1),
            ("a".into(), 3),
            ("a".into(), 6),
            ("b".into(), 10),
            ("b".into(), 30),
        ];
        assert_eq!(sorted(out), expected, "p={p}");
    }
    Ok(())
}

type Triple = (String, i64, i64);
type Triples = KeyedStream<Triple, String, fn(&Triple) -> String>;

#[test]
fn rolling_aggregations_by_position() -> Result<(), JobError> {
    let input = vec![
        ("a".to_string(), 5i64, 1i64),
        ("a".into(), 3, 2),
        ("a".into(), 7, 3),
        ("b".into(), 1, 4),
    ];
    for p in PARALLELISMS {
        let run = |agg: &dyn Fn(&Triples) -> DataStream<Triple>| {
            let env = env(p);
            let keyed = env
                .from_collection(input.clone())
                .key_by((|t: &(String, i64, i64)| t.0.clone()) as fn(&_) -> String);
            agg(&keyed).execute_and_collect()
        };
        let last_a =
            |v: Vec<(String, i64, i64)>| v.into_iter().filter(|t| t.0 == "a").collect::<Vec<_>>();
        let mut sums = last_a(run(&|k| k.sum(1))?);
        sums.sort_by_key(|t| t.1);
        assert_eq!(
            sums.iter().map(|t| t.1).collect::<Vec<_>>(),
            vec![5, 8, 15],
            "sum p={p}"
        );
        assert!(
            sums.iter().all(|t| t.2 == 1),
            "sum keeps the first record's other fields: {sums:?}"
        );

        let mins = last_a(run(&|k| k.min(1))?);
        assert_eq!(
            sorted(mins.iter().map(|t| t.1).collect()),
            vec![3, 3, 5],
            "min p={p}"
        );
        assert!(
            mins.iter().all(|t| t.2 == 1),
            "min keeps the first record's other fields"
        );

        let maxs = last_a(run(&|k| k.max(1))?);
        assert_eq!(
            sorted(maxs.iter().map(|t| t.1).collect()),
            vec![5, 5, 7],
            "max p={p}"
        );

        let min_by = last_a(run(&|k| k.min_by(1))?);
        assert_eq!(
            sorted(min_by),
            vec![("a".into(), 3, 2), ("a".into(), 3, 2), ("a".into(), 5, 1)],
            "min_by p={p}"
        );

        let max_by = last_a(run(&|k| k.max_by(1))?);
        assert_eq!(
            sorted(max_by),
            vec![("a".into(), 5, 1), ("a".into(), 5, 1), ("a".into(), 7, 3)],
            "max_by p={p}"
        );
    }
    Ok(())
}

#[test]
fn keyed_sum_of_scalars() -> Result<(), JobError> {
    let env = env(2);
    let out = env
        .from_sequence(1, 10)
        .key_by(|x: &i64| x % 2)
        .sum(0)
        .execute_and_collect()?;
    let finals = final_per_key(
        &out.iter()
            .map(|x| (x % 2 == 0, *x, *x as usize))
            .collect::<Vec<_>>(),
    );
    assert_eq!(finals.get(&false), Some(&25));
    assert_eq!(finals.get(&true), Some(&30));
    Ok(())
}

#[test]
fn result_reports_operator_record_counts() -> Result<(), JobError> {
    let env = env(2);
    env.from_sequence(1, 1000)
        .filter(|x: &i64| x % 10 == 0)
        .name("tens")
        .print_to_err();
    let result = env.execute("counts")?;
    let tens = result
        .operator("tens")
        .ok_or_else(|| JobError::Internal("no metrics".into()))?;
    assert_eq!((tens.records_in, tens.records_out), (1000, 100));
    assert_eq!(
        result.operator("Sequence Source").map(|o| o.records_out),
        Some(1000)
    );
    assert_eq!(result.parallelism, 2);
    Ok(())
}

mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn keyed_aggregations_agree_at_every_parallelism(
            input in proptest::collection::vec((0u8..12, -1000i64..1000), 0..300)
        ) {
            let mut expected: BTreeMap<u8, (i64, usize)> = BTreeMap::new();
            for (k, v) in &input {
                let e = expected.entry(*k).or_insert((0, 0));
                e.0 += v;
                e.1 += 1;
            }
            for p in PARALLELISMS {
                let env = env(p);
                let out = env
                    .from_collection(input.iter().map(|(k, v)| (*k, *v, 1usize)).collect::<Vec<_>>())
                    .rebalance()
                    .key_by(|t: &(u8, i64, usize)| t.0)
                    .reduce(|a: (u8, i64, usize), b: (u8, i64, usize)| (a.0, a.1 + b.1, a.2 + b.2))
                    .execute_and_collect()
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                prop_assert_eq!(out.len(), input.len());
                let finals = final_per_key(&out.iter().map(|t| (t.0, (t.1, t.2), t.2)).collect::<Vec<_>>());
                prop_assert_eq!(&finals, &expected, "parallelism {}", p);
            }
        }
    }
}

#[test]
fn side_outputs_coexist_with_a_keyed_exchange_on_the_main_output() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = env(p);
        let odd = OutputTag::<String>::new("odd");
        let tag = odd.clone();
        let evens = env.from_sequence(1, 1000).process(
            move |x: i64, ctx: &mut ProcessContext, out: &mut Collector<(i64, i64)>| {
                if x % 2 == 0 {
                    out.collect((x % 7, x));
                } else {
                    ctx.output(&tag, format!("odd {x}"));
                }
                Ok(())
            },
        );
        let side = evens.get_side_output(&odd).map(|s: String| s.len() as i64);
        let sums = evens
            .key_by(|t: &(i64, i64)| t.0)
            .sum(1)
            .map(|t: (i64, i64)| t.1)
            .union(&[&side.key_by(|x: &i64| *x).as_stream()])
            .execute_and_collect()?;
        // 500 odd strings and 500 rolling sums.
        assert_eq!(sums.len(), 1000, "p={p}");
    }
    Ok(())
}

#[test]
fn a_stream_built_before_execute_reads_its_own_input_in_the_next_job() -> Result<(), JobError> {
    // As in Flink (and PyFlink's basic_operations example): every job runs the stream's
    // operators again from their sources, whatever was built and run in between.
    for p in PARALLELISMS {
        let env = env(p);
        let ds = env.from_collection(vec![1i64, 2, 3]);
        let first = ds.map(|x| x + 1).execute_and_collect()?;
        assert_eq!(sorted(first), vec![2, 3, 4], "p={p}");
        // A source made after the first job must not be read in place of `ds`'s.
        let other = env.from_collection(vec![10i64, 20]);
        let second = ds.map(|x| x * 100).execute_and_collect()?;
        assert_eq!(sorted(second), vec![100, 200, 300], "p={p}");
        let third = ds
            .filter(|x: &i64| *x != 2)
            .union(&[&other])
            .execute_and_collect()?;
        assert_eq!(sorted(third), vec![1, 3, 10, 20], "p={p}");
        // The plan lists only the job being built.
        ds.map(|x| x - 1).print();
        let plan = env.get_execution_plan()?;
        assert_eq!(plan.len(), 2, "p={p}: {plan:?}");
        let result = env.execute("fourth")?;
        assert_eq!(result.operators.len(), 3, "p={p}");
    }
    Ok(())
}

#[test]
fn a_flat_map_of_one_record_into_many_sends_them_all_in_order_with_its_timestamp(
) -> Result<(), JobError> {
    // Its output goes on a batch at a time while the function runs (one huge line into
    // its words), mixed with the outputs of the records before and after it: through a
    // flat map, and through a process function.
    for (p, process) in [(1, false), (2, false), (1, true), (2, true)] {
        let env = env(p);
        let timed = env
            .from_elements(vec![(1u64, 10i64), (100_000, 20), (2, 30)])
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_monotonous_timestamps()
                    .with_timestamp_assigner(|e: &(u64, i64), _| e.1),
            )
            .set_parallelism(1);
        let many = if process {
            timed.process(
                |(n, _t): (u64, i64),
                 _ctx: &mut ProcessContext,
                 out: &mut Collector<(u64, u64)>| {
                    (0..n).for_each(|i| out.collect((n, i)));
                    Ok(())
                },
            )
        } else {
            timed.flat_map(|(n, _t): (u64, i64), out: &mut Collector<(u64, u64)>| {
                (0..n).for_each(|i| out.collect((n, i)));
            })
        };
        let out = many
            .set_parallelism(1)
            .process(
                |v: (u64, u64), ctx: &mut ProcessContext, out: &mut Collector<(u64, u64, i64)>| {
                    out.collect((v.0, v.1, ctx.timestamp().unwrap_or(-1)));
                    Ok(())
                },
            )
            .set_parallelism(1)
            .execute_and_collect()?;
        assert_eq!(out.len(), 100_003, "p={p}");
        let expected: Vec<(u64, u64, i64)> = std::iter::once((1, 0, 10))
            .chain((0..100_000).map(|i| (100_000, i, 20)))
            .chain((0..2).map(|i| (2, i, 30)))
            .collect();
        // The collecting sink runs at the job's parallelism: in order at one.
        if p == 1 {
            assert!(out == expected, "p={p}");
        } else {
            assert_eq!(sorted(out), sorted(expected), "p={p}");
        }
    }
    Ok(())
}

/// Counts the `open` and `close` calls of every subtask, and the records before open.
#[derive(Clone, Default)]
struct Lifecycle {
    opened: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    closed: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    is_open: bool,
}

impl KeyedProcessFunction<i64, i64, i64> for Lifecycle {
    fn open(&mut self, _ctx: &RuntimeContext) -> Result<(), UserError> {
        if self.is_open {
            return Err("opened twice".into());
        }
        self.is_open = true;
        self.opened
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    fn process_element(
        &mut self,
        value: i64,
        _ctx: &mut KeyedProcessContext<i64>,
        out: &mut Collector<i64>,
    ) -> Result<(), UserError> {
        if !self.is_open {
            return Err("process_element before open".into());
        }
        out.collect(value);
        Ok(())
    }

    fn close(&mut self) -> Result<(), UserError> {
        self.closed
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[test]
fn a_function_opens_and_closes_once_on_each_running_subtask_and_never_on_idle_ones(
) -> Result<(), JobError> {
    // Four workers, a keyed function of parallelism 2: two subtasks run, two stay idle.
    let env = env(4);
    let lifecycle = Lifecycle::default();
    let out = env
        .from_sequence(1, 50)
        .key_by(|x: &i64| x % 5)
        .process(lifecycle.clone())
        .set_parallelism(2)
        .execute_and_collect()?;
    assert_eq!(sorted(out), (1..=50).collect::<Vec<_>>());
    let count = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        count(&lifecycle.opened),
        2,
        "open, once per running subtask"
    );
    assert_eq!(
        count(&lifecycle.closed),
        2,
        "close, once per running subtask"
    );
    Ok(())
}
