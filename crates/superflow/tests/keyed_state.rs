//! Keyed state in keyed process functions: value, list, map, reducing and aggregating
//! state, always scoped to the current key, at parallelism 1, 2 and 4.

use std::collections::BTreeMap;

use superflow::prelude::*;

const PARALLELISMS: [usize; 3] = [1, 2, 4];

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Sum of the first `n` values of key `k`, where record `i` has key `i % 7` and value `i`.
fn expected(records: i64) -> BTreeMap<i64, (i64, usize, i64, i64, usize)> {
    let mut per_key: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for i in 0..records {
        per_key.entry(i % 7).or_default().push(i);
    }
    per_key
        .into_iter()
        .map(|(k, vs)| {
            let sum = vs.iter().sum::<i64>();
            let max = vs.iter().copied().max().unwrap_or(0);
            let distinct = vs
                .iter()
                .map(|v| v % 10)
                .collect::<std::collections::BTreeSet<_>>()
                .len();
            (k, (sum, vs.len(), max, sum, distinct))
        })
        .collect()
}

struct Sum;
impl AggregateFunction<i64, i64, i64> for Sum {
    fn create_accumulator(&self) -> i64 {
        0
    }
    fn add(&self, v: i64, acc: &mut i64) {
        *acc += v;
    }
    fn get_result(&self, acc: &i64) -> i64 {
        *acc
    }
    fn merge(&self, acc: &mut i64, other: i64) {
        *acc += other;
    }
}

/// Keeps every kind of state per key and reports them all when the input ends.
#[derive(Clone)]
struct AllStates {
    sum: ValueStateDescriptor<i64>,
    seen: ListStateDescriptor<i64>,
    digits: MapStateDescriptor<i64, u32>,
    max: ReducingStateDescriptor<i64>,
    total: AggregatingStateDescriptor<i64, i64, i64>,
}

impl AllStates {
    fn new() -> Self {
        AllStates {
            sum: ValueStateDescriptor::new("sum"),
            seen: ListStateDescriptor::new("seen"),
            digits: MapStateDescriptor::new("digits"),
            max: ReducingStateDescriptor::new("max", |a: i64, b: i64| a.max(b)),
            total: AggregatingStateDescriptor::new("total", Sum),
        }
    }
}

type Report = (i64, (i64, usize, i64, i64, usize));

impl KeyedProcessFunction<i64, i64, Report> for AllStates {
    fn process_element(
        &mut self,
        v: i64,
        ctx: &mut KeyedProcessContext<i64>,
        _: &mut Collector<Report>,
    ) -> Result<(), UserError> {
        let mut sum = ctx.get_state(&self.sum);
        let s = sum.value().unwrap_or(0) + v;
        sum.update(s);
        ctx.get_list_state(&self.seen).add(v);
        let mut digits = ctx.get_map_state(&self.digits);
        let n = digits.get(&(v % 10)).unwrap_or(0);
        digits.put(v % 10, n + 1);
        ctx.get_reducing_state(&self.max).add(v);
        ctx.get_aggregating_state(&self.total).add(v);
        // Report once, at the end of input.
        ctx.timer_service().register_event_time_timer(i64::MAX - 1);
        Ok(())
    }

    fn on_timer(
        &mut self,
        _: i64,
        ctx: &mut KeyedProcessContext<i64>,
        out: &mut Collector<Report>,
    ) -> Result<(), UserError> {
        let key = *ctx.get_current_key();
        let sum = ctx.get_state(&self.sum).value().unwrap_or(0);
        let count = ctx.get_list_state(&self.seen).get().len();
        let max = ctx.get_reducing_state(&self.max).get().unwrap_or(0);
        let total = ctx.get_aggregating_state(&self.total).get().unwrap_or(0);
        let distinct = ctx.get_map_state(&self.digits).entries().len();
        out.collect((key, (sum, count, max, total, distinct)));
        ctx.get_state(&self.sum).clear();
        ctx.get_list_state(&self.seen).clear();
        Ok(())
    }
}

#[test]
fn every_kind_of_keyed_state_is_kept_per_key() -> Result<(), JobError> {
    for p in PARALLELISMS {
        let env = StreamExecutionEnvironment::get_execution_environment();
        env.set_parallelism(p);
        let out = env
            .from_sequence(0, 999)
            .assign_timestamps_and_watermarks(
                WatermarkStrategy::for_monotonous_timestamps()
                    .with_timestamp_assigner(|v: &i64, _| *v),
            )
            .key_by(|v: &i64| v % 7)
            .process(AllStates::new())
            .execute_and_collect()?;
        assert_eq!(
            sorted(out),
            expected(1000).into_iter().collect::<Vec<_>>(),
            "p={p}"
        );
    }
    Ok(())
}

#[test]
fn a_state_name_used_with_two_types_fails_with_its_name() {
    #[derive(Clone)]
    struct Confused;
    impl KeyedProcessFunction<i64, i64, i64> for Confused {
        fn process_element(
            &mut self,
            v: i64,
            ctx: &mut KeyedProcessContext<i64>,
            _: &mut Collector<i64>,
        ) -> Result<(), UserError> {
            ctx.get_state(&ValueStateDescriptor::<i64>::new("count"))
                .update(v);
            ctx.get_state(&ValueStateDescriptor::<String>::new("count"))
                .update(v.to_string());
            Ok(())
        }
    }
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(1);
    env.from_sequence(0, 3)
        .key_by(|v: &i64| *v)
        .process(Confused)
        .name("Confused counter")
        .print();
    let err = env
        .execute("confused")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("Confused counter"), "{err}");
    assert!(err.contains("state 'count'"), "{err}");
}

/// Flink's documented managed keyed state example (`CountWindowAverage`): per key, the
/// count and sum of the values seen in `ValueState`, and every second value the average
/// is emitted and the state cleared.
#[test]
fn flinks_count_window_average_example() -> Result<(), JobError> {
    let sum = ValueStateDescriptor::<(u64, u64)>::new("average");
    for parallelism in PARALLELISMS {
        let env = StreamExecutionEnvironment::get_execution_environment();
        env.set_parallelism(parallelism);
        let descriptor = sum.clone();
        let out = env
            .from_elements(vec![(1u64, 3u64), (1, 5), (1, 7), (1, 4), (1, 2)])
            .key_by(|v: &(u64, u64)| v.0)
            .flat_map_with_state(
                move |input: (u64, u64),
                      ctx: &mut KeyedProcessContext<u64>,
                      out: &mut Collector<(u64, u64)>| {
                    let mut state = ctx.get_state(&descriptor);
                    let (count, total) = state.value().unwrap_or((0, 0));
                    let (count, total) = (count + 1, total + input.1);
                    if count >= 2 {
                        out.collect((input.0, total / count));
                        state.clear();
                    } else {
                        state.update((count, total));
                    }
                    Ok(())
                },
            )
            .execute_and_collect()?;
        assert_eq!(out, vec![(1, 4), (1, 5)], "parallelism {parallelism}");
    }
    Ok(())
}

#[test]
fn map_and_filter_with_keyed_state() -> Result<(), JobError> {
    let seen = ValueStateDescriptor::<u64>::new("seen");
    let first = ValueStateDescriptor::<bool>::new("first");
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    let numbered = {
        let seen = seen.clone();
        env.from_sequence(0, 99)
            .key_by(|i: &i64| i % 4)
            .map_with_state(move |i: i64, ctx: &mut KeyedProcessContext<i64>| {
                let mut n = ctx.get_state(&seen);
                let next = n.value().unwrap_or(0) + 1;
                n.update(next);
                Ok((i % 4, next))
            })
    };
    let firsts = numbered
        .key_by(|t: &(i64, u64)| t.0)
        .filter_with_state(move |_t: &(i64, u64), ctx: &mut KeyedProcessContext<i64>| {
            let mut done = ctx.get_state(&first);
            let is_first = done.value().is_none();
            done.update(true);
            Ok(is_first)
        })
        .execute_and_collect()?;
    assert_eq!(sorted(firsts), vec![(0, 1), (1, 1), (2, 1), (3, 1)]);
    Ok(())
}

#[test]
fn the_store_a_killed_process_left_is_removed_by_the_next_run() -> Result<(), JobError> {
    let root = tempfile::tempdir().map_err(|e| JobError::Internal(e.to_string()))?;
    let lsm = root.path().join("lsm");
    // What a SIGKILLed run leaves: its store, named after a process that has ended (no
    // process has this id, above Linux's largest, 2^22).
    let left = lsm.join(format!("run-00000000000000ff-{}", 1u32 << 23));
    std::fs::create_dir_all(left.join("partitions"))
        .map_err(|e| JobError::Internal(e.to_string()))?;
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(2);
    env.set_state_backend(StateBackendConfig::EmbeddedLsm {
        dir: Some(lsm.clone()),
        cache_entries: 10,
        timers: TimerStorage::InMemory,
        block_cache_bytes: 1 << 20,
    });
    let out = env
        .from_sequence(1, 1_000)
        .key_by(|x: &i64| x % 7)
        .reduce(|a: i64, b: i64| a + b)
        .execute_and_collect()?;
    assert_eq!(out.len(), 1_000);
    assert!(!left.exists(), "the ended process's store is still there");
    Ok(())
}

/// Keeps a per-key value of type `T` in state "count", set from each record.
#[derive(Clone)]
struct Keeps<T>(std::marker::PhantomData<fn() -> T>);

impl<T> KeyedProcessFunction<u64, u64, u64> for Keeps<T>
where
    T: From<u8> + Clone + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    fn process_element(
        &mut self,
        v: u64,
        ctx: &mut KeyedProcessContext<u64>,
        _: &mut Collector<u64>,
    ) -> Result<(), UserError> {
        let mut state = ctx.get_state(&ValueStateDescriptor::<T>::new("count"));
        if state.value().is_none() {
            state.update(T::from((v % 7) as u8));
        }
        Ok(())
    }
}

/// A value wider than the byte the first job kept.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Wide(u64, u64, u64, u64);

impl From<u8> for Wide {
    fn from(v: u8) -> Wide {
        Wide(v.into(), 0, 0, 0)
    }
}

#[test]
fn state_restored_as_another_type_fails_naming_the_operator_state_and_savepoint() {
    let root = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(1);
    env.from_sequence(0, i64::MAX)
        .map(|v: i64| v as u64)
        .key_by(|v: &u64| *v % 10)
        .process(Keeps::<u8>(std::marker::PhantomData))
        .name("Typed counter")
        .uid("typed-counter")
        .print();
    let client = env
        .execute_async("small values")
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let savepoint = client
        .stop_with_savepoint(root.path().join("savepoint"))
        .unwrap_or_else(|e| panic!("{e}"));
    client.wait().unwrap_or_else(|e| panic!("{e}"));

    // The same state, now read as a wider type: its bytes end too early.
    let env = StreamExecutionEnvironment::get_execution_environment();
    env.set_parallelism(1);
    env.set_restore_path(&savepoint);
    env.from_sequence(0, 100)
        .map(|v: i64| v as u64)
        .key_by(|v: &u64| *v % 10)
        .process(Keeps::<Wide>(std::marker::PhantomData))
        .name("Typed counter")
        .uid("typed-counter")
        .print();
    let err = env
        .execute("wide values")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("Typed counter"), "{err}");
    assert!(err.contains("state 'count' cannot be restored"), "{err}");
    assert!(err.contains(&savepoint.display().to_string()), "{err}");
}
